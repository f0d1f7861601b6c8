/**
 * `@collab/client/rich`: rich-text documents (`rich-text`, Quill's Delta; docs/OT.md sections 12 to 21) for the
 * `@collab/client` SDK. A separate entry, so that a page editing plain text never bundles quill-delta.
 *
 * ```ts
 * import { CollabClient } from "@collab/client";
 * import { openRichDocument } from "@collab/client/rich";
 *
 * const client = await CollabClient.connect({ url: "wss://collab.example.com/ws" });
 * const doc = await openRichDocument(client, "notes/today");
 * doc.on("change", (e) => quill.updateContents(e.op, "api"));
 * doc.formatText(0, 5, { bold: true });
 * ```
 * @module
 */
export { openRichDocument, RichDocument } from "./richdocument.js";
export type { RichChangeEvent, RichDocumentEvents, RichLocalChangeEvent } from "./richdocument.js";
export { decodeRichOp, encodeRichOp } from "./richcodec.js";
export {
  applyRich,
  checkRichFits,
  composeRich,
  Delta,
  diffRich,
  invertRich,
  normalizeRichOp,
  RICH_TEXT_TYPE_NAME,
  transformRich,
  transformRichCursor,
} from "./rich.js";
export type { RichAttributes, RichComponent, RichOpInput } from "./rich.js";
