/** The document page (/d/<id>): the collaborative editor, who is here, connection and save state, version. */
import { Compartment, EditorState } from "@codemirror/state";
import { insertNewline, moveLineDown, moveLineUp, selectLine, standardKeymap } from "@codemirror/commands";
import { drawSelection, EditorView, highlightActiveLine, keymap, placeholder } from "@codemirror/view";
import {
  CollabClient,
  CollabConnectionError,
  type CollabDocument,
  CollabServerError,
  type ConnectionState,
  DocumentTypeError,
  ErrorCode,
  TEXT_TYPE_NAME,
  UndoManager,
} from "@collab/client";
import type { RichDocument } from "@collab/client/rich";
import { collabBinding, type Peer } from "./binding.js";
import { avatar, identity, identityChip, onIdentityChange } from "./chrome.js";
import { documentIdProblem } from "./docid.js";
import { h, logo } from "./dom.js";
import { recentDocuments, rememberDocument } from "./recent.js";

/** What the page exposes for the browser console and the end-to-end tests (read it; do not build on it). */
export interface PageHandle {
  client: CollabClient;
  doc: CollabDocument;
  view: EditorView;
  undo: UndoManager;
}

declare global {
  interface Window {
    /** A plain-text document's page. (A rich-text one sets `__collabRich`, richeditor.ts.) */
    __collab?: PageHandle;
    /** The page's client, whatever the document's type. */
    __collabClient?: CollabClient;
  }
}

const MAX_AVATARS = 5;

/**
 * The rich-text type's name (`@collab/client/rich` has it, but everything rich stays in the richeditor chunk, loaded on
 * demand: a plain-text page never fetches Quill or quill-delta).
 */
const RICH_TEXT_TYPE_NAME = "rich-text";
const richModule = (): Promise<typeof import("./richeditor.js")> => import("./richeditor.js");

/**
 * CodeMirror's standard keys for a plain-text document: Enter inserts a bare newline (no language, so no
 * auto-indentation), plus line selection and moving lines. Undo/redo come from the binding (the SDK's UndoManager).
 */
const plainTextKeymap = [
  { key: "Enter", run: insertNewline },
  ...standardKeymap.filter((binding) => binding.key !== "Enter"),
  { key: "Mod-l", run: selectLine, preventDefault: true },
  { key: "Alt-ArrowUp", run: moveLineUp },
  { key: "Alt-ArrowDown", run: moveLineDown },
];

function socketUrl(): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}

/** The first connection is not retried by the SDK (an application decides); a page keeps trying, visibly. */
async function connectWithRetry(onWaiting: (message: string) => void): Promise<CollabClient> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await CollabClient.connect({ url: socketUrl(), clientName: "collab-page/0.1" });
    } catch (error) {
      const refused =
        (error instanceof CollabServerError && !error.retryable) ||
        (error instanceof CollabConnectionError && error.httpStatus !== undefined && error.httpStatus >= 400 && error.httpStatus < 500);
      if (refused) {
        throw error;
      }
      const delay = Math.min(10_000, 500 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2);
      onWaiting(`Can't reach the server. Retrying in ${Math.ceil(delay / 1000)} s…`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

function describeFailure(error: unknown): { title: string; detail: string } {
  if (error instanceof CollabServerError) {
    switch (error.code) {
      case ErrorCode.DOC_DELETED:
        return { title: "This document was deleted", detail: "Its link no longer opens it. Start a new document from the list." };
      case ErrorCode.FORBIDDEN:
      case ErrorCode.UNAUTHORIZED:
        return { title: "You don't have access to this document", detail: "Ask its owner for access, or sign in with another account." };
      case ErrorCode.INVALID_DOC_ID:
        return { title: "That is not a valid document name", detail: "Names use letters, digits and . _ : / - (up to 128)." };
      case ErrorCode.TYPE_MISMATCH:
        return { title: "This document can't be opened here", detail: "Its type is not one this page edits." };
      default:
        return { title: "The document could not be opened", detail: error.message };
    }
  }
  return { title: "The document could not be opened", detail: error instanceof Error ? error.message : String(error) };
}

export async function renderEditor(root: HTMLElement, docId: string): Promise<void> {
  document.title = `${docId} · Collab`;

  const connection = h("span", { class: "connection", id: "connection", "data-state": "connecting", role: "status" }, h("span", { class: "dot" }), h("span", { class: "label" }, "Connecting…"));
  const saveState = h("span", { class: "save-state", id: "save-state", "aria-live": "polite" }, "");
  const peersBox = h("div", { class: "peers", id: "peers", "aria-label": "People in this document" });
  const undoButton = h("button", { class: "icon-button", id: "undo", title: "Undo your last edit (Ctrl+Z)", "aria-label": "Undo", disabled: true }, "↶");
  const redoButton = h("button", { class: "icon-button", id: "redo", title: "Redo (Ctrl+Y)", "aria-label": "Redo", disabled: true }, "↷");
  const shareButton = h("button", { class: "button small", id: "share", title: "Copy this document's link" }, "Share");
  const versionLabel = h("span", { id: "version" }, "");
  const countsLabel = h("span", { id: "counts" }, "");
  const editorHost = h("div", { class: "editor-host", id: "editor" });
  const banner = h("div", { class: "banner", id: "banner", role: "alert", hidden: true });
  const paper = h("div", { class: "paper" }, h("div", { class: "loading", id: "loading" }, "Opening the document…"));

  root.replaceChildren(
    h(
      "header",
      { class: "topbar" },
      logo(),
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "/" }, "Documents"), h("span", { class: "sep", "aria-hidden": "true" }, "/"), h("span", { class: "doc-title", id: "doc-title", title: docId }, docId)),
      saveState,
      h("div", { class: "spacer" }),
      peersBox,
      h("div", { class: "toolbar" }, undoButton, redoButton),
      connection,
      shareButton,
      identityChip(),
    ),
    banner,
    h("main", { class: "document" }, paper),
    h("footer", { class: "statusbar" }, versionLabel, countsLabel),
  );

  shareButton.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      shareButton.textContent = "Link copied";
    } catch {
      shareButton.textContent = "Copy the address bar";
    }
    setTimeout(() => (shareButton.textContent = "Share"), 2000);
  });

  const showFailure = (error: unknown): void => {
    const { title, detail } = describeFailure(error);
    paper.replaceChildren(h("div", { class: "failure" }, h("h1", {}, title), h("p", {}, detail), h("a", { class: "button primary", href: "/" }, "All documents")));
    connection.hidden = true;
    saveState.textContent = "";
  };

  const problem = documentIdProblem(docId);
  if (problem !== null) {
    showFailure(new Error(problem));
    return;
  }

  let client: CollabClient;
  let opened: Opened;
  try {
    client = await connectWithRetry((message) => {
      const loading = paper.querySelector("#loading");
      if (loading) {
        loading.textContent = message;
      }
    });
    opened = await openWithItsType(client, docId, wantedType(docId));
  } catch (error) {
    showFailure(error);
    return;
  }
  const rich = opened.rich !== undefined;
  const doc = opened.rich ?? opened.text!;
  rememberDocument(docId, rich ? RICH_TEXT_TYPE_NAME : TEXT_TYPE_NAME);
  if (new URLSearchParams(location.search).has("type")) {
    // The type only matters when the document is created: the shared link is the plain one.
    history.replaceState(null, "", location.pathname);
  }
  document.body.dataset.docType = rich ? "rich-text" : "text";

  let peers: readonly Peer[] = [];
  let noticeTimer: ReturnType<typeof setTimeout> | undefined;
  const notice = (message: string): void => {
    banner.textContent = message;
    banner.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => (banner.hidden = true), 8000);
  };
  const onRefused = (error: unknown): void =>
    notice(
      error instanceof RangeError
        ? `That edit is too large to send at once (the server accepts ${Math.floor(client.limits.maxOpBytes / 1024)} KB per edit): paste it in parts.`
        : `That edit could not be applied: ${error instanceof Error ? error.message : String(error)}`,
    );
  const onPeers = (list: readonly Peer[]): void => ((peers = list), paintPeers());
  const placeholderText = "Start typing… Everyone with this page's link sees your text as you write.";
  const surface: Surface =
    opened.rich !== undefined
      ? await mountRich(editorHost, paper, client, opened.rich, { onPeers, onRefused, placeholder: placeholderText, label: `Document ${docId}` })
      : mountText(editorHost, paper, client, opened.text!, { onPeers, onRefused, placeholder: placeholderText, label: `Document ${docId}`, onDocChanged: () => scheduleCounts() });
  const undo = surface.undo;
  const openDoc = doc;
  if (opened.rich !== undefined) {
    opened.rich.on("change", () => scheduleCounts());
    opened.rich.on("localChange", () => scheduleCounts());
  }
  surface.focus();

  onIdentityChange(() => surface.publish());
  undoButton.addEventListener("click", () => {
    try {
      undo.undo();
    } catch (error) {
      onRefused(error);
    }
    surface.focus();
  });
  redoButton.addEventListener("click", () => {
    try {
      undo.redo();
    } catch (error) {
      onRefused(error);
    }
    surface.focus();
  });

  function paintPeers(): void {
    const shown = peers.slice(0, MAX_AVATARS).map((p) => avatar(p, "peer"));
    const more = peers.length > MAX_AVATARS ? [h("span", { class: "avatar more", title: peers.slice(MAX_AVATARS).map((p) => p.name).join(", ") }, `+${peers.length - MAX_AVATARS}`)] : [];
    peersBox.replaceChildren(...shown, ...more);
    peersBox.title = peers.length === 0 ? "Only you" : `Also here: ${peers.map((p) => p.name).join(", ")}`;
  }

  let countsQueued = false;
  function scheduleCounts(): void {
    if (!countsQueued) {
      countsQueued = true;
      requestAnimationFrame(() => {
        countsQueued = false;
        const text = openDoc.text;
        const words = text.match(/[\p{L}\p{N}][\p{L}\p{N}'’-]*/gu)?.length ?? 0;
        countsLabel.textContent = `${words.toLocaleString()} ${words === 1 ? "word" : "words"} · ${openDoc.length.toLocaleString()} characters`;
      });
    }
  }
  scheduleCounts();

  const stateLabels: Record<ConnectionState, string> = { connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…", closed: "Disconnected" };
  function paintState(): void {
    const state = client.state;
    const offline = state !== "connected" && navigator.onLine === false;
    connection.dataset.state = offline ? "offline" : state;
    connection.querySelector(".label")!.textContent = offline ? "Offline" : stateLabels[state];
    connection.title = state === "connected" ? `Connected to ${client.serverId ?? "the server"}` : "Your edits are kept and sent when the connection is back.";
    saveState.textContent = openDoc.closed ? "" : openDoc.hasPendingOps ? (state === "connected" ? "Saving…" : "Edits kept offline") : "All changes saved";
    saveState.dataset.pending = String(openDoc.hasPendingOps);
    versionLabel.textContent = `Version ${openDoc.version.toLocaleString()}`;
    undoButton.disabled = !undo.canUndo || openDoc.closed;
    redoButton.disabled = !undo.canRedo || openDoc.closed;
  }
  // Coalesced per frame: a burst of remote ops repaints the chrome once.
  let paintQueued = false;
  function queuePaint(): void {
    if (!paintQueued) {
      paintQueued = true;
      requestAnimationFrame(() => {
        paintQueued = false;
        paintState();
      });
    }
  }
  for (const event of ["change", "localChange", "ack"] as const) {
    (openDoc as CollabDocument).on(event, queuePaint);
  }
  client.on("state", queuePaint);
  window.addEventListener("online", queuePaint);
  window.addEventListener("offline", queuePaint);
  paintState();

  const readOnly = (message: string): void => {
    clearTimeout(noticeTimer);
    surface.setEditable(false);
    banner.textContent = message;
    banner.hidden = false;
    peers = [];
    paintPeers();
    queuePaint();
  };
  openDoc.on("closed", ({ error }) => {
    if (error instanceof CollabServerError && error.code === ErrorCode.DOC_DELETED) {
      readOnly("This document was deleted. What you see is its last text; it can no longer be edited.");
    } else if (error !== null && client.state !== "closed") {
      readOnly(`This document was closed: ${describeFailure(error).title.toLowerCase()}.`);
    }
  });
  client.on("disconnected", (e) => {
    if (!e.willReconnect) {
      readOnly(e.reason === "session-replaced" ? "This document is open in another tab with the same session." : `Disconnected from the server (${e.description}). Reload the page to reconnect.`);
    }
  });
  window.addEventListener("beforeunload", (event) => {
    if (openDoc.hasPendingOps) {
      // Unsent edits would be lost with the page (they are kept across reconnects, not across a closed tab).
      event.preventDefault();
    }
  });
}

/** The editor of the open document, as the page's chrome drives it. */
interface Surface {
  undo: UndoManager<any, any>;
  setEditable(editable: boolean): void;
  focus(): void;
  /** Re-sends this user's selection (after a change of name or colour). */
  publish(): void;
}

interface SurfaceOptions {
  onPeers: (peers: readonly Peer[]) => void;
  onRefused: (error: unknown) => void;
  placeholder: string;
  label: string;
}

/** The type to open the document as: `?type=` (set by the picker's "New" buttons), else what it was here last time. */
function wantedType(docId: string): string {
  const asked = new URLSearchParams(location.search).get("type");
  if (asked === RICH_TEXT_TYPE_NAME || asked === TEXT_TYPE_NAME) {
    return asked;
  }
  return recentDocuments().find((d) => d.id === docId)?.type ?? TEXT_TYPE_NAME;
}

/**
 * Opens the document as `type` (which creates it with that type if it is new); a document of the other type is
 * refused by the server (DocumentTypeError) and opened with its own.
 */
async function openWithItsType(client: CollabClient, docId: string, type: string): Promise<Opened> {
  const open = async (rich: boolean): Promise<Opened> => (rich ? { rich: await (await richModule()).openRich(client, docId) } : { text: await client.openDocument(docId) });
  try {
    return await open(type === RICH_TEXT_TYPE_NAME);
  } catch (error) {
    if (error instanceof DocumentTypeError) {
      return open(type !== RICH_TEXT_TYPE_NAME);
    }
    throw error;
  }
}

/** The open document: one of the two. */
interface Opened {
  text?: CollabDocument;
  rich?: RichDocument;
}

/** Quill for a rich-text document: its module (and Quill) is fetched only now. */
async function mountRich(editorHost: HTMLElement, paper: HTMLElement, client: CollabClient, doc: RichDocument, options: SurfaceOptions): Promise<Surface> {
  const { mountRichEditor } = await richModule();
  paper.replaceChildren(editorHost);
  paper.classList.add("rich");
  const editor = mountRichEditor({ host: editorHost, document: doc, identity, ...options });
  window.__collabRich = { doc, quill: editor.quill, undo: editor.undo };
  window.__collabClient = client;
  return editor;
}

/** CodeMirror for a plain-text document. */
function mountText(editorHost: HTMLElement, paper: HTMLElement, client: CollabClient, doc: CollabDocument, options: SurfaceOptions & { onDocChanged: () => void }): Surface {
  const undo = new UndoManager(doc);
  const editable = new Compartment();
  const binding = collabBinding({ document: doc, undoManager: undo, identity, onPeers: options.onPeers, onRefused: options.onRefused });
  const view = new EditorView({
    parent: editorHost,
    state: EditorState.create({
      doc: doc.text,
      extensions: [
        binding.extension,
        drawSelection(),
        highlightActiveLine(),
        EditorView.lineWrapping,
        // The page's selection colours (a theme: CodeMirror's own selectors are more specific than a stylesheet's).
        EditorView.theme({
          ".cm-selectionLayer .cm-selectionBackground": { background: "#e5e7eb" },
          "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground": { background: "#bfdbfe" },
        }),
        placeholder(options.placeholder),
        keymap.of(plainTextKeymap),
        editable.of(EditorView.editable.of(true)),
        EditorView.contentAttributes.of({ "aria-label": options.label, spellcheck: "true" }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) {
            options.onDocChanged();
          }
        }),
      ],
    }),
  });
  paper.replaceChildren(editorHost);
  window.__collab = { client, doc, view, undo };
  window.__collabClient = client;
  return {
    undo,
    setEditable: (on) => view.dispatch({ effects: editable.reconfigure(EditorView.editable.of(on)) }),
    focus: () => view.focus(),
    publish: () => binding.publish(view),
  };
}
