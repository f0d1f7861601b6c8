/**
 * The rich-text editor: Quill 2 bound to a `RichDocument` (Quill's Delta is the document's op format, docs/OT.md
 * section 14), the others' carets and selections drawn by quill-cursors with their names and colours, undo/redo through
 * the SDK's `UndoManager` (the user's own edits only, inverted by the rich-text type). Loaded only for rich-text
 * documents: the page's script imports this module on demand, so the plain-text page never downloads Quill.
 *
 * Invariant: Quill's contents are the document's contents, plus the trailing newline Quill always keeps when the
 * document has none (a document created elsewhere may lack it). User changes are submitted as Quill reports them;
 * remote changes are applied with `updateContents` (source "api", never sent back). A change the document refuses, or
 * a Quill that no longer matches the document, is repaired from the document (`setContents`, selection kept).
 * @module
 */
import Quill, { type Range } from "quill";
import QuillCursors from "quill-cursors/core";
import { type CollabClient, UndoManager } from "@collab/client";
import { Delta, openRichDocument, type RichDocument } from "@collab/client/rich";
import { decodeIdentity, encodeIdentity, type Peer, type PeerIdentity } from "./binding.js";

Quill.register("modules/cursors", QuillCursors);

/** Opens a rich-text document (here, so that the plain-text page's script never includes the rich-text SDK). */
export function openRich(client: CollabClient, docId: string): Promise<RichDocument> {
  return openRichDocument(client, docId);
}

/** What the page exposes for the browser console and the end-to-end tests (read it; do not build on it). */
export interface RichPageHandle {
  doc: RichDocument;
  quill: Quill;
  undo: UndoManager<Delta, Delta>;
}

declare global {
  interface Window {
    __collabRich?: RichPageHandle;
  }
}

export interface RichEditorOptions {
  host: HTMLElement;
  document: RichDocument;
  identity: () => PeerIdentity;
  onPeers: (peers: readonly Peer[]) => void;
  /** An edit the document refused (over the announced op size): it has been taken back out of the editor. */
  onRefused: (error: unknown) => void;
  placeholder: string;
  label: string;
}

export interface RichEditor {
  quill: Quill;
  undo: UndoManager<Delta, Delta>;
  setEditable(editable: boolean): void;
  focus(): void;
  /** Re-sends this user's selection (after a change of name or colour). */
  publish(): void;
}

/** Quill's toolbar: headings, bold/italic/underline, link, lists, an image embed, clear formatting. */
const TOOLBAR = [[{ header: [1, 2, 3, false] }], ["bold", "italic", "underline", "link"], [{ list: "ordered" }, { list: "bullet" }], ["image"], ["clean"]];

interface CursorsModule {
  createCursor(id: string, name: string, color: string): unknown;
  moveCursor(id: string, range: { index: number; length: number }): void;
  removeCursor(id: string): void;
  clearCursors(): void;
  toggleFlag(id: string, shouldShow?: boolean): void;
}

/** How long a peer's name stays up after their caret moved (then it fades; hovering the caret shows it again). */
const FLAG_SHOWN_MS = 2500;

export function mountRichEditor(options: RichEditorOptions): RichEditor {
  const { document: doc, host } = options;
  const quill = new Quill(host, {
    theme: "snow",
    placeholder: options.placeholder,
    modules: {
      toolbar: TOOLBAR,
      // The SDK moves every selection through every op (presence events): quill-cursors must not move them again.
      cursors: { transformOnTextChange: false, hideDelayMs: 3000, hideSpeedMs: 300 },
      // Undo is the SDK's (only this user's edits, transformed by everyone else's): Quill's own stack stays empty.
      history: { maxStack: 0, userOnly: true },
      keyboard: {
        bindings: {
          collabUndo: { key: "z", shortKey: true, shiftKey: false, handler: () => (undoStep("undo"), false) },
          collabRedo: { key: "z", shortKey: true, shiftKey: true, handler: () => (undoStep("redo"), false) },
          collabRedoY: { key: "y", shortKey: true, handler: () => (undoStep("redo"), false) },
        },
      },
    },
  });
  quill.root.setAttribute("aria-label", options.label);
  quill.root.setAttribute("spellcheck", "true");
  const cursors = quill.getModule("cursors") as CursorsModule;

  /** Quill holds exactly the document (or it plus Quill's own last newline); else it is reset from the document. */
  const expectedLength = (): number => doc.length + (endsWithNewline() ? 0 : 1);
  const endsWithNewline = (): boolean => {
    const last = doc.contents.ops[doc.contents.ops.length - 1];
    return typeof last?.insert === "string" && last.insert.endsWith("\n");
  };
  const repair = (): void => {
    const selection = quill.getSelection();
    quill.setContents(doc.contents, "api");
    if (selection !== null) {
      quill.setSelection(Math.min(selection.index, quill.getLength() - 1), 0, "silent");
    }
  };
  const checkInSync = (): void => {
    if (quill.getLength() !== expectedLength()) {
      repair();
    }
  };

  quill.setContents(doc.contents, "api");
  // A new document is empty; Quill's is one newline. Make that newline the document's, so a format of the first line
  // (a header, a list) has a character to hold it.
  if (doc.length === 0) {
    doc.insertText(0, "\n");
  }
  // After that newline: it is the editor's, not an edit of the user's to undo.
  const undo = new UndoManager<Delta, Delta>(doc);

  quill.on("text-change", (delta, _old, source) => {
    if (source !== "user") {
      return;
    }
    let op = new Delta(delta.ops);
    if (!endsWithNewline() && reaches(op) > doc.length) {
      // The edit touches Quill's trailing newline, which the document lacks: it becomes the document's first.
      op = new Delta().retain(doc.length).insert("\n").compose(op);
    }
    try {
      doc.submitOp(op, "user");
    } catch (error) {
      repair();
      options.onRefused(error);
      return;
    }
    publishSelection();
  });
  quill.on("selection-change", (range: Range | null, _old, source) => {
    if (source === "user" || range !== null) {
      publishSelection();
    }
  });

  doc.on("change", (e) => {
    // The op is relative to the previous local contents, which Quill shows (typing reaches the document in the same
    // task as the keystroke). Should Quill hold anything else, its length no longer matches and it is reset.
    quill.updateContents(e.op, "api");
    checkInSync();
  });
  doc.on("localChange", (e) => {
    if (e.origin === "undo" || e.origin === "redo") {
      quill.updateContents(e.op, "api");
      checkInSync();
      const end = changeEnd(e.op);
      quill.setSelection(Math.min(end, quill.getLength() - 1), 0, "api");
    }
  });

  const peers = new Map<string, Peer>();
  const flagTimers = new Map<string, ReturnType<typeof setTimeout>>();
  const paintPeers = (): void => options.onPeers([...peers.values()].sort((a, b) => a.name.localeCompare(b.name)));
  doc.on("presence", ({ clientId, presence }) => {
    if (presence === null) {
      clearTimeout(flagTimers.get(clientId));
      flagTimers.delete(clientId);
      peers.delete(clientId);
      cursors.removeCursor(clientId);
      paintPeers();
      return;
    }
    const who = decodeIdentity(presence.userData, clientId);
    const known = peers.get(clientId);
    if (known === undefined || known.name !== who.name || known.color !== who.color) {
      cursors.removeCursor(clientId);
      cursors.createCursor(clientId, who.name, who.color);
    }
    peers.set(clientId, { clientId, name: who.name, color: who.color, anchor: presence.anchor, head: presence.head });
    const from = Math.min(presence.anchor, presence.head);
    cursors.moveCursor(clientId, { index: from, length: Math.abs(presence.head - presence.anchor) });
    // The name shows where the caret moved, then fades (as on the plain-text page).
    cursors.toggleFlag(clientId, true);
    clearTimeout(flagTimers.get(clientId));
    flagTimers.set(
      clientId,
      setTimeout(() => {
        flagTimers.delete(clientId);
        cursors.toggleFlag(clientId, false);
      }, FLAG_SHOWN_MS),
    );
    paintPeers();
  });

  function publishSelection(): void {
    if (doc.closed) {
      return;
    }
    const range = quill.getSelection();
    if (range === null) {
      return;
    }
    const clamp = (n: number): number => Math.max(0, Math.min(n, doc.length));
    try {
      doc.setPresence(clamp(range.index), clamp(range.index + range.length), encodeIdentity(options.identity()));
    } catch {
      // Closed meanwhile, or a position the document no longer has: the next selection change sends a valid one.
    }
  }

  function undoStep(kind: "undo" | "redo"): void {
    try {
      if (kind === "undo") {
        undo.undo();
      } else {
        undo.redo();
      }
    } catch (error) {
      options.onRefused(error);
    }
  }

  return {
    quill,
    undo,
    setEditable: (editable) => {
      quill.enable(editable);
      if (!editable) {
        cursors.clearCursors();
        peers.clear();
      }
    },
    focus: () => quill.focus(),
    publish: publishSelection,
  };
}

/** Units of the document an op reads (retains and deletes). */
function reaches(op: Delta): number {
  let n = 0;
  for (const c of op.ops) {
    n += typeof c.retain === "number" ? c.retain : (c.delete ?? 0);
  }
  return n;
}

/** Where the caret goes after an undo: the end of the last thing the op inserted or kept formatted, else its delete. */
function changeEnd(op: Delta): number {
  let at = 0;
  let end = 0;
  for (const c of op.ops) {
    if (typeof c.insert === "string") {
      at += c.insert.length;
      end = at;
    } else if (c.insert !== undefined) {
      at += 1;
      end = at;
    } else if (typeof c.retain === "number") {
      at += c.retain;
      if (c.attributes !== undefined) {
        end = at;
      }
    } else {
      end = at;
    }
  }
  return end;
}
