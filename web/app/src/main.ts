/** The page's entry: `/` is the document picker, `/d/<doc-id>` the editor of one document. */
// Quill's and quill-cursors' styles are in the page's one stylesheet (a few KB); Quill's script loads only with a
// rich-text document (richeditor.ts is a separate chunk).
import "quill/dist/quill.snow.css";
import "quill-cursors/css";
import "./styles.css";
import { documentIdFromLocation } from "./docid.js";
import { renderEditor } from "./editor.js";
import { renderPicker } from "./picker.js";

const root = document.getElementById("app")!;
const docId = documentIdFromLocation(location.pathname);
if (docId === null) {
  renderPicker(root);
} else {
  void renderEditor(root, docId);
}
