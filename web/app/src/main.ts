/** The page's entry: `/` is the document picker, `/d/<doc-id>` the editor of one document. */
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
