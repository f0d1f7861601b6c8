/**
 * `RichDocument`: one open rich-text document (`rich-text`, Quill's Delta; docs/OT.md sections 12 to 21), on the sync
 * state machine it shares with text documents ({@link SyncDocument}).
 * @module
 */
import type { CollabClient } from "./client.js";
import type { DocumentTypeError } from "./errors.js";
import type { EventQueue } from "./events.js";
import type { OtType } from "./ottype.js";
import {
  applyRich,
  checkRichFits,
  composeRich,
  Delta,
  diffRich,
  invertRich,
  normalizeRichOp,
  RICH_TEXT_TYPE_NAME,
  type RichAttributes,
  type RichOpInput,
  transformRich,
  transformRichCursor,
} from "./rich.js";
import { decodeRichOp, encodeRichOp } from "./richcodec.js";
import { type DocumentHost, type OpenDocumentOptions, type SyncDocumentEvents, SyncDocument } from "./sync.js";

/** A remote op applied to a rich document, or the document reloaded from a snapshot. */
export interface RichChangeEvent {
  /**
   * The change as applied to the local contents (remote ops already transformed past local pending edits): what
   * Quill's `updateContents` takes.
   */
  op: Delta;
  /** The local contents before the change. */
  previous: Delta;
  /** The local contents after the change. */
  contents: Delta;
  /** The server version after the change. */
  version: number;
  /** Whose op it was; `null` for a resync. */
  clientId: string | null;
  /** The authenticated author of the op, if the server knows one. */
  author: string | null;
  /** The document was reloaded from a snapshot; `op` turns the previous local contents into the new ones. */
  resync: boolean;
}

/** A local edit applied to a rich document (by the application, or by undo/redo). */
export interface RichLocalChangeEvent {
  op: Delta;
  previous: Delta;
  contents: Delta;
  /** What {@link RichDocument.submitOp} was given as origin (`"undo"` / `"redo"` from the undo manager). */
  origin: string | undefined;
}

/** The events of a {@link RichDocument}. */
export type RichDocumentEvents = SyncDocumentEvents<RichChangeEvent, RichLocalChangeEvent>;

/** `rich-text` for the state machine: snapshots arrive as an insert-only op in `Snapshot.content` (decision P6). */
const richType: OtType<Delta, Delta> = {
  name: RICH_TEXT_TYPE_NAME,
  fromSnapshot: (snapshot) => {
    const document = decodeRichOp(snapshot.content);
    if (document.ops.some((c) => c.insert === undefined)) {
      throw new Error("A rich-text snapshot holds a retain or delete: it is not a document.");
    }
    return document;
  },
  normalize: (op) => normalizeRichOp(op as RichOpInput),
  isNoop: (op) => op.ops.length === 0,
  noop: () => new Delta(),
  length: (document) => document.length(),
  checkFits: checkRichFits,
  apply: applyRich,
  transform: transformRich,
  compose: composeRich,
  invert: invertRich,
  diff: diffRich,
  transformCursor: transformRichCursor,
  encode: encodeRichOp,
  decode: decodeRichOp,
};

/**
 * One open rich-text document. Obtained from {@link openRichDocument}.
 *
 * {@link contents} is the document as Quill's `getContents()` gives it (a Delta of inserts); edits are Deltas as
 * Quill's `text-change` event reports them. They apply at once and are sent in the background, exactly as for text
 * documents (resume, dedupe, offline edits). Positions and lengths count UTF-16 code units, an embed 1 (Quill's
 * units), in edits and in presence alike.
 */
export class RichDocument extends SyncDocument<Delta, Delta, RichChangeEvent, RichLocalChangeEvent> {
  /** @internal */
  constructor(host: DocumentHost, id: string, queue: EventQueue, options?: OpenDocumentOptions) {
    super(richType, new Delta(), host, id, queue, options);
  }

  /** The local contents, including pending local edits (a Delta of inserts; do not modify it). */
  get contents(): Delta {
    return this.localDoc;
  }

  /** The plain text of the contents (an embed is left out). */
  get text(): string {
    return this.localDoc.ops.map((c) => (typeof c.insert === "string" ? c.insert : "")).join("");
  }

  /**
   * Applies a local edit made against the current {@link contents} (a Delta, or its `ops`) and queues it for the
   * server. Throws `InvalidOpError` when it is not a valid op or does not fit the contents, `RangeError` when its
   * encoding exceeds the server's `max_op_bytes`, {@link DocumentClosedError} when the document is closed.
   * @param origin Passed through to the `localChange` event (the undo manager marks its own edits).
   */
  submitOp(op: RichOpInput, origin?: string): void {
    this.submitInternal(op, origin);
  }

  /** Inserts `text` at `index`, with formats. */
  insertText(index: number, text: string, attributes?: RichAttributes): void {
    this.submitOp(new Delta().retain(index).insert(text, attributes ?? null));
  }

  /** Inserts an embed (e.g. `{image: url}` as `type` "image", `value` url) at `index`. */
  insertEmbed(index: number, type: string, value: unknown, attributes?: RichAttributes): void {
    this.submitOp(new Delta().retain(index).insert({ [type]: value }, attributes ?? null));
  }

  /** Deletes `length` units at `index`. */
  deleteText(index: number, length: number): void {
    this.submitOp(new Delta().retain(index).delete(length));
  }

  /** Sets formats on `[index, index + length)`; a `null` value removes a format. */
  formatText(index: number, length: number, attributes: RichAttributes): void {
    this.submitOp(new Delta().retain(index).retain(length, attributes));
  }

  protected changeEvent(op: Delta, previous: Delta, clientId: string | null, author: string | null, resync: boolean): RichChangeEvent {
    return { op, previous, contents: this.localDoc, version: this.version, clientId, author, resync };
  }

  protected localChangeEvent(op: Delta, previous: Delta, origin: string | undefined): RichLocalChangeEvent {
    return { op, previous, contents: this.localDoc, origin };
  }
}

/**
 * Subscribes to a rich-text document (`rich-text`, Quill's Delta) on `client`, as {@link CollabClient.openDocument}
 * does for text: resolves once its snapshot arrived; a document that does not exist yet is created as a rich-text
 * document; a text document rejects with {@link DocumentTypeError}. (A function rather than a client method, so that a
 * page editing only text does not bundle quill-delta.)
 */
export function openRichDocument(client: CollabClient, docId: string, options?: OpenDocumentOptions): Promise<RichDocument> {
  return client.openWith(docId, (host, queue) => new RichDocument(host, docId, queue, options));
}
