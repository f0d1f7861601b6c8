/**
 * `CollabDocument`: one open text document (`text-unicode`), a local replica that accepts edits at once and converges
 * with the server and every other client (docs/PROTOCOL.md sections 5 to 8). The state machine is {@link SyncDocument},
 * shared with rich-text documents; this class is its text API.
 * @module
 */
import { decodeTextOp, encodeTextOp } from "./codec.js";
import type { EventQueue } from "./events.js";
import type { OtType } from "./ottype.js";
import { type DocumentHost, type OpenDocumentOptions, type SyncDocumentEvents, SyncDocument } from "./sync.js";
import {
  apply,
  checkFits,
  codePointLength,
  codePointToUtf16,
  compose,
  deleteOp,
  diff,
  insertOp,
  invert,
  normalize,
  opFromUtf16Changes,
  opToUtf16Changes,
  TEXT_TYPE_NAME,
  type TextOp,
  type TextOpComponent,
  transform,
  transformCursor,
  type Utf16Change,
  utf16ToCodePoint,
} from "./text.js";

export type { AckEvent, OpenDocumentOptions, PresenceEvent, RemotePresence } from "./sync.js";

/** A remote op applied, or the document reloaded from a snapshot. */
export interface DocumentChangeEvent {
  /** The change as applied to the local text (remote ops already transformed past local pending edits). */
  op: TextOp;
  /** The local text before the change. */
  previousText: string;
  /** The local text after the change. */
  text: string;
  /** The server version after the change. */
  version: number;
  /** Whose op it was; `null` for a resync. */
  clientId: string | null;
  /** The authenticated author of the op, if the server knows one. */
  author: string | null;
  /**
   * The document was reloaded from a snapshot (history gap, rejected op, `VERSION_TOO_OLD`); `op` turns the previous
   * local text into the new one, surviving local edits rebased onto it.
   */
  resync: boolean;
  /** The same change in UTF-16 offsets of `previousText`, ready for a browser editor. */
  readonly utf16Changes: Utf16Change[];
}

/** A local edit applied (by the application, or by undo/redo). */
export interface LocalChangeEvent {
  op: TextOp;
  previousText: string;
  text: string;
  /** What {@link CollabDocument.submitOp} was given as origin (`"undo"` / `"redo"` from the undo manager). */
  origin: string | undefined;
  /** The same change in UTF-16 offsets of `previousText`. */
  readonly utf16Changes: Utf16Change[];
}

/** The events of a {@link CollabDocument}. */
export type DocumentEvents = SyncDocumentEvents<DocumentChangeEvent, LocalChangeEvent>;

/** `text-unicode` for the state machine. */
const textType: OtType<string, TextOp> = {
  name: TEXT_TYPE_NAME,
  fromSnapshot: (snapshot) => snapshot.text,
  normalize: (op) => normalize(op as readonly TextOpComponent[]),
  isNoop: (op) => op.length === 0,
  noop: () => [],
  length: codePointLength,
  checkFits: (op, document) => checkFits(op, codePointLength(document)),
  apply,
  transform,
  compose,
  invert,
  diff,
  transformCursor,
  encode: encodeTextOp,
  decode: decodeTextOp,
};

/**
 * One open text document. Obtained from {@link CollabClient.openDocument}.
 *
 * Local edits apply to {@link text} immediately and are sent in the background; edits keep being accepted while
 * disconnected and are sent after the reconnect (the in-flight one resent with its original client seq, so the server
 * never applies it twice). Positions count Unicode code points; the `*Utf16` methods and {@link toUtf16} /
 * {@link fromUtf16} speak the UTF-16 offsets of browser editors.
 */
export class CollabDocument extends SyncDocument<string, TextOp, DocumentChangeEvent, LocalChangeEvent> {
  /** @internal */
  constructor(host: DocumentHost, id: string, queue: EventQueue, options?: OpenDocumentOptions) {
    super(textType, "", host, id, queue, options);
  }

  /** The local text, including pending local edits. */
  get text(): string {
    return this.localDoc;
  }

  /** Inserts `text` at code point `position`. */
  insert(position: number, text: string): void {
    this.submitOp(insertOp(position, text));
  }

  /** Deletes `length` code points at `position`. */
  delete(position: number, length: number): void {
    this.submitOp(deleteOp(position, length));
  }

  /**
   * Applies a local edit made against the current {@link text} and queues it for the server. Throws
   * `InvalidOpError` when it does not fit the text, `RangeError` when its encoding exceeds the server's
   * `max_op_bytes` (split it), {@link DocumentClosedError} when the document is closed.
   * @param origin Passed through to the `localChange` event (the undo manager marks its own edits).
   */
  submitOp(op: readonly TextOpComponent[], origin?: string): void {
    this.submitInternal(op, origin);
  }

  /** Applies editor changes given in UTF-16 offsets of the current {@link text} (e.g. a CodeMirror transaction). */
  applyUtf16Changes(changes: readonly Utf16Change[], origin?: string): void {
    this.submitOp(opFromUtf16Changes(this.localDoc, changes), origin);
  }

  /** The UTF-16 offset of code point `position` in the current text. */
  toUtf16(position: number): number {
    return codePointToUtf16(this.localDoc, position);
  }

  /** The code point position of UTF-16 `offset` in the current text. */
  fromUtf16(offset: number): number {
    return utf16ToCodePoint(this.localDoc, offset);
  }

  /** {@link setPresence} with UTF-16 offsets of the current text (an editor's selection). */
  setPresenceUtf16(anchor: number, head: number = anchor, userData?: Uint8Array | string): void {
    this.setPresence(this.fromUtf16(anchor), this.fromUtf16(head), userData);
  }

  protected changeEvent(op: TextOp, previousText: string, clientId: string | null, author: string | null, resync: boolean): DocumentChangeEvent {
    let utf16: Utf16Change[] | undefined;
    return {
      op,
      previousText,
      text: this.localDoc,
      version: this.version,
      clientId,
      author,
      resync,
      get utf16Changes() {
        return (utf16 ??= opToUtf16Changes(previousText, op));
      },
    };
  }

  protected localChangeEvent(op: TextOp, previousText: string, origin: string | undefined): LocalChangeEvent {
    let utf16: Utf16Change[] | undefined;
    return {
      op,
      previousText,
      text: this.localDoc,
      origin,
      get utf16Changes() {
        return (utf16 ??= opToUtf16Changes(previousText, op));
      },
    };
  }
}
