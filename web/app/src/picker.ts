/** The start page: open or create a document, recent documents of this browser, the server's documents. */
import { documentIdProblem, documentPath, newDocumentId } from "./docid.js";
import { h, logo, relativeTime } from "./dom.js";
import { identityChip } from "./chrome.js";
import { forgetDocument, recentDocuments } from "./recent.js";

const TEXT_TYPE = "text-unicode";
const RICH_TYPE = "rich-text";

/**
 * "New rich-text document": the type is chosen here, at creation (a document's type is fixed then). The document is
 * created through the HTTP API holding one newline, Quill's empty document, so that every editor opening it starts
 * from the same contents; where the API is off or refuses, the page creates it when it subscribes (`?type=`).
 */
async function newRichDocument(): Promise<void> {
  const id = newDocumentId();
  try {
    await fetch(`/v1/docs/${id}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: RICH_TYPE, content: [{ insert: "\n" }] }),
    });
  } catch {
    // The page creates it.
  }
  location.assign(`${documentPath(id)}?type=${RICH_TYPE}`);
}

interface ServerDocument {
  id: string;
  type: string;
  version: number;
  created?: string;
}

export function renderPicker(root: HTMLElement): void {
  document.title = "Collab: documents";
  const input = h("input", {
    id: "doc-id",
    type: "text",
    placeholder: "e.g. notes/team-meeting",
    autocomplete: "off",
    spellcheck: "false",
    "aria-label": "Document name",
    maxlength: "128",
  });
  const problem = h("p", { class: "field-error", role: "alert" });
  const open = (event: Event): void => {
    event.preventDefault();
    const id = input.value.trim();
    const message = documentIdProblem(id);
    problem.textContent = message ?? "";
    input.classList.toggle("invalid", message !== null);
    if (message === null) {
      location.assign(documentPath(id));
    }
  };
  input.addEventListener("input", () => {
    problem.textContent = "";
    input.classList.remove("invalid");
  });

  const recentList = h("ul", { class: "doc-list", id: "recent-list" });
  const recentSection = h("section", { class: "panel", "aria-labelledby": "recent-title" }, h("h2", { id: "recent-title" }, "Recent on this device"), recentList);
  const fillRecent = (): void => {
    const recent = recentDocuments();
    recentList.replaceChildren(
      ...recent.map((d) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: documentPath(d.id), class: "doc-link", "data-type": d.type ?? TEXT_TYPE },
            h("span", { class: d.type === RICH_TYPE ? "doc-icon rich" : "doc-icon", "aria-hidden": "true" }),
            h("span", { class: "doc-name" }, d.id),
            d.type === RICH_TYPE ? h("span", { class: "doc-kind" }, "rich text") : null,
          ),
          h("span", { class: "doc-meta" }, relativeTime(d.openedAt)),
          h(
            "button",
            {
              class: "icon-button subtle",
              title: "Remove from this list",
              "aria-label": `Remove ${d.id} from recent documents`,
              onclick: () => {
                forgetDocument(d.id);
                fillRecent();
              },
            },
            "×",
          ),
        ),
      ),
    );
    if (recent.length === 0) {
      recentList.replaceChildren(h("li", { class: "empty" }, "Documents you open appear here."));
    }
  };
  fillRecent();

  const serverList = h("ul", { class: "doc-list", id: "server-list" }, h("li", { class: "empty" }, "Loading…"));
  const serverSection = h("section", { class: "panel", "aria-labelledby": "server-title" }, h("h2", { id: "server-title" }, "On this server"), serverList);
  void loadServerDocuments(serverList, serverSection);

  root.replaceChildren(
    h("header", { class: "topbar" }, logo(), h("div", { class: "spacer" }), identityChip()),
    h(
      "main",
      { class: "picker" },
      h(
        "section",
        { class: "hero" },
        h("h1", {}, "Write together, in real time"),
        h("p", { class: "lead" }, "Open a document by name, or start a new one and share its link. Everyone with the link edits the same text live."),
        h(
          "div",
          { class: "hero-actions" },
          h("button", { class: "button primary", id: "new-doc", title: "A plain-text document", onclick: () => location.assign(documentPath(newDocumentId())) }, "New document"),
          h("button", { class: "button", id: "new-rich-doc", title: "A formatted document: headings, bold, lists, links, images", onclick: () => void newRichDocument() }, "New rich-text document"),
          h("form", { class: "open-form", onsubmit: open }, input, h("button", { class: "button", type: "submit" }, "Open")),
        ),
        problem,
      ),
      h("div", { class: "columns" }, recentSection, serverSection),
    ),
  );
}

async function loadServerDocuments(list: HTMLElement, section: HTMLElement): Promise<void> {
  try {
    const response = await fetch("/v1/docs?limit=20", { headers: { accept: "application/json" }, cache: "no-store" });
    if (!response.ok) {
      throw new Error(String(response.status));
    }
    const body = (await response.json()) as { documents?: ServerDocument[] };
    const documents = (body.documents ?? []).filter((d) => d.type === undefined || d.type === TEXT_TYPE || d.type === RICH_TYPE);
    if (documents.length === 0) {
      list.replaceChildren(h("li", { class: "empty" }, "No documents yet."));
      return;
    }
    list.replaceChildren(
      ...documents.map((d) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: documentPath(d.id), class: "doc-link", "data-type": d.type ?? TEXT_TYPE },
            h("span", { class: d.type === RICH_TYPE ? "doc-icon rich" : "doc-icon", "aria-hidden": "true" }),
            h("span", { class: "doc-name" }, d.id),
            d.type === RICH_TYPE ? h("span", { class: "doc-kind" }, "rich text") : null,
          ),
          h("span", { class: "doc-meta" }, `${d.version} ${d.version === 1 ? "edit" : "edits"}`),
        ),
      ),
    );
  } catch {
    // The HTTP API is off, or this user may not list documents: the section is not useful here.
    section.hidden = true;
  }
}
