import {
  codePointToUtf16,
  CollabClient,
  type CollabDocument,
  diff,
  type TextOp,
  transformCursor,
  UndoManager,
  utf16ToCodePoint,
} from "@collab/client";

/**
 * Keeps a <textarea> and a Collab document in step, with no framework: the user's typing becomes ops, remote ops
 * rewrite the text with the caret kept in place, and the caret is published as presence. Returns the unbinding.
 */
export function bindTextarea(doc: CollabDocument, textarea: HTMLTextAreaElement, me: { name: string; color: string }): () => void {
  let shown = (textarea.value = doc.text);
  const publishCaret = (): void => doc.setPresenceUtf16(textarea.selectionStart, textarea.selectionEnd, JSON.stringify(me));

  // A textarea reports only its new value: the edit is what changed since the last value it showed.
  const onInput = (): void => {
    doc.submitOp(diff(shown, textarea.value), "textarea");
    shown = textarea.value;
    publishCaret();
  };
  // Any other change (a remote op, a resync, undo/redo): move the caret through it, then write the new text.
  const show = (event: { op: TextOp; previousText: string; text: string }, own: boolean): void => {
    const [start, end] = [textarea.selectionStart, textarea.selectionEnd].map((offset) =>
      codePointToUtf16(event.text, transformCursor(utf16ToCodePoint(event.previousText, offset), event.op, own)),
    );
    shown = textarea.value = event.text;
    textarea.setSelectionRange(start!, end!);
  };
  const offChange = doc.on("change", (event) => show(event, false));
  const offLocal = doc.on("localChange", (event) => event.origin !== "textarea" && show(event, true));
  textarea.addEventListener("input", onInput);
  textarea.addEventListener("select", publishCaret);
  textarea.addEventListener("keyup", publishCaret);
  textarea.addEventListener("click", publishCaret);
  return () => {
    offChange();
    offLocal();
    textarea.removeEventListener("input", onInput);
    textarea.removeEventListener("select", publishCaret);
    textarea.removeEventListener("keyup", publishCaret);
    textarea.removeEventListener("click", publishCaret);
  };
}

/** A page: connect (the token from the application's backend), open the document of the URL, bind, undo on Ctrl+Z. */
export async function start(textarea: HTMLTextAreaElement, status: HTMLElement): Promise<CollabClient> {
  const client = await CollabClient.connect({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
    getToken: async () => (await fetch("/api/collab-token", { credentials: "same-origin" })).text(),
  });
  status.textContent = client.state;
  client.on("state", (state) => (status.textContent = state));
  const doc = await client.openDocument(new URLSearchParams(location.search).get("doc") ?? "notes/welcome");
  bindTextarea(doc, textarea, { name: "Ann", color: "#c33" });
  const undo = new UndoManager(doc);
  textarea.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") {
      e.preventDefault();
      void (e.shiftKey ? undo.redo() : undo.undo()); // the binding shows the result
    }
  });
  return client;
}
