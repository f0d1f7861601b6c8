import type { CollabClient } from "@collab/client";
import { Delta, openRichDocument, type RichDocument } from "@collab/client/rich";

/**
 * Opens (or creates) a rich-text document and gives an empty one a heading, the way an application seeds a new note.
 * Edits are Quill Deltas; positions count UTF-16 units, as Quill does.
 */
export async function openNote(client: CollabClient, id: string, title: string): Promise<RichDocument> {
  const doc = await openRichDocument(client, id);
  if (doc.length === 0) {
    doc.submitOp(new Delta().insert(title).insert("\n", { header: 1 }).insert("\n"));
  }
  // In a page: doc.on("change", (e) => quill.updateContents(e.op, "api")) and, for the user's edits,
  // quill.on("text-change", (delta, _old, source) => source === "user" && doc.submitOp(delta)).
  await doc.whenSynced();
  return doc;
}
