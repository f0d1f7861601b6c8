/**
 * The CodeMirror 6 binding of a `CollabDocument`: local transactions become text-unicode ops, remote ops become
 * CodeMirror changes, undo/redo go through the SDK's `UndoManager` (the user's own edits only), and the other users'
 * carets and selections are drawn in their colour with their name.
 *
 * Invariant: the editor's text is the document's `text`, character for character, at the end of every synchronous
 * step. Both sides are updated in the same task (the SDK delivers its events before returning to the event loop), so
 * a keystroke can never be applied against a stale text. Offsets are converted between CodeMirror's UTF-16 and the
 * document's code points by the SDK (`applyUtf16Changes`, `utf16Changes`, `toUtf16`).
 * @module
 */
import { Annotation, ChangeSet, EditorSelection, EditorState, type Extension, StateEffect, StateField, Transaction } from "@codemirror/state";
import { Decoration, type DecorationSet, EditorView, keymap, type PluginValue, ViewPlugin, type ViewUpdate, WidgetType } from "@codemirror/view";
import type { CollabDocument, RemotePresence, UndoManager, Utf16Change } from "@collab/client";

/** How a user appears to the others: the presence `user_data`, as JSON. */
export interface PeerIdentity {
  name: string;
  /** A CSS colour (`#rrggbb`). */
  color: string;
}

/** Another user's selection, in UTF-16 offsets of the editor's text. */
export interface Peer extends PeerIdentity {
  clientId: string;
  anchor: number;
  head: number;
}

export interface CollabBindingOptions {
  document: CollabDocument;
  /** Undo/redo of the user's own edits (Mod-z, Mod-y, Mod-Shift-z). */
  undoManager: UndoManager;
  /** This user's name and colour, sent with the selection (read at every send: a rename shows at the next one). */
  identity: () => PeerIdentity;
  /** Called whenever the set of other users or their selections change. */
  onPeers?: (peers: readonly Peer[]) => void;
  /**
   * An edit the document refused (over the server's announced op size, or the document closed): it has been taken
   * back out of the editor.
   */
  onRefused?: (error: unknown) => void;
}

/** Marks transactions that mirror the document (remote ops, resyncs, undo/redo): they are not sent back. */
const fromDocument = Annotation.define<boolean>();

const setPeers = StateEffect.define<DecorationSet>();

/** The remote selections, mapped through every change until the next refresh replaces them. */
const peerDecorations = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(value, tr) {
    let next = value.map(tr.changes);
    for (const effect of tr.effects) {
      if (effect.is(setPeers)) {
        next = effect.value;
      }
    }
    return next;
  },
  provide: (field) => EditorView.decorations.from(field),
});

class CaretWidget extends WidgetType {
  constructor(
    readonly name: string,
    readonly color: string,
    readonly clientId: string,
    /** Changes whenever the peer's selection moves: a new DOM node restarts the label's show-then-fade animation. */
    readonly moves: number,
  ) {
    super();
  }

  override eq(other: CaretWidget): boolean {
    return other.name === this.name && other.color === this.color && other.clientId === this.clientId && other.moves === this.moves;
  }

  toDOM(): HTMLElement {
    const caret = document.createElement("span");
    caret.className = "cm-remote-caret";
    caret.style.setProperty("--peer-color", this.color);
    caret.dataset.clientId = this.clientId;
    caret.setAttribute("aria-label", `${this.name}'s cursor`);
    const label = document.createElement("span");
    label.className = "cm-remote-caret-label";
    label.textContent = this.name;
    caret.append(label);
    return caret;
  }

  override ignoreEvent(): boolean {
    return true;
  }
}

/** Decodes a peer's `user_data`; anything unreadable gets a neutral look rather than breaking the page. */
export function decodeIdentity(userData: Uint8Array, clientId: string): PeerIdentity {
  try {
    const value = JSON.parse(new TextDecoder().decode(userData)) as Partial<PeerIdentity>;
    const name = typeof value.name === "string" && value.name.trim().length > 0 ? value.name.trim().slice(0, 64) : "Anonymous";
    const color = typeof value.color === "string" && /^#[0-9a-f]{6}$/i.test(value.color) ? value.color : "#64748b";
    return { name, color };
  } catch {
    return { name: `Guest ${clientId.slice(0, 4)}`, color: "#64748b" };
  }
}

export function encodeIdentity(identity: PeerIdentity): string {
  return JSON.stringify({ name: identity.name.slice(0, 64), color: identity.color });
}

/** The CodeMirror changes of a transaction, in offsets of the text before it. */
function changesOf(tr: Transaction): Utf16Change[] {
  const changes: Utf16Change[] = [];
  tr.changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    changes.push({ from: fromA, to: toA, insert: inserted.toString() });
  });
  return changes;
}

/**
 * The editor extension. Create the editor with `doc: document.text` and this extension; the document must be open.
 * The editor splits lines on `\n` only, so a `\r` in the document stays a character of its own and both texts keep
 * the same offsets.
 */
export function collab(options: CollabBindingOptions): Extension {
  return collabBinding(options).extension;
}

/** {@link collab}, with a way to send this user's selection again (after a rename). */
export function collabBinding(options: CollabBindingOptions): { extension: Extension; publish: (view: EditorView) => void } {
  const { document: doc, undoManager, identity } = options;

  const plugin = ViewPlugin.fromClass(
    class implements PluginValue {
      private readonly unsubscribe: (() => void)[] = [];
      private refreshQueued = false;
      /** Per peer: its last selection seen here and how many times it moved, for the caret label's animation. */
      private readonly lastSeen = new Map<string, { anchor: number; head: number; moves: number }>();

      constructor(private readonly view: EditorView) {
        this.unsubscribe.push(
          doc.on("change", (e) => this.mirror(e.utf16Changes, null)),
          doc.on("localChange", (e) => {
            // Edits typed here are already in the editor; undo and redo happen in the document first.
            if (e.origin === "undo" || e.origin === "redo") {
              this.mirror(e.utf16Changes, "end");
            }
          }),
          doc.on("presence", () => this.queueRefresh()),
        );
        this.queueRefresh();
        this.publishSelection();
      }

      update(update: ViewUpdate): void {
        let local = false;
        const transactions = update.transactions;
        for (const [i, tr] of transactions.entries()) {
          if (!tr.docChanged || tr.annotation(fromDocument) === true) {
            continue;
          }
          try {
            doc.applyUtf16Changes(changesOf(tr));
            local = true;
          } catch (error) {
            // The document refused the edit (a paste over the op size limit, a closed document): take it and
            // everything after it back out of the editor, right after this update (no dispatch is allowed inside it;
            // nothing else can run in between), so that the editor never shows text the document does not have.
            const inverses = transactions.slice(i).reverse().map((t) => t.changes.invert(t.startState.doc));
            queueMicrotask(() => {
              for (const changes of inverses) {
                this.view.dispatch({ changes, annotations: [fromDocument.of(true), Transaction.addToHistory.of(false)] });
              }
            });
            options.onRefused?.(error);
            break;
          }
        }
        const mirrored = update.transactions.some((tr) => tr.annotation(fromDocument) === true);
        if (local || (update.selectionSet && !mirrored)) {
          this.publishSelection();
        }
      }

      destroy(): void {
        for (const off of this.unsubscribe) {
          off();
        }
      }

      /** Applies a change the document made (remote op, resync, undo/redo) to the editor. */
      private mirror(changes: readonly Utf16Change[], select: "end" | null): void {
        if (changes.length === 0) {
          return;
        }
        const set = ChangeSet.of(changes as Utf16Change[], this.view.state.doc.length);
        let caret = -1;
        set.iterChanges((_fromA, _toA, _fromB, toB) => (caret = toB));
        this.view.dispatch({
          changes: set,
          annotations: [fromDocument.of(true), Transaction.addToHistory.of(false), Transaction.remote.of(select === null)],
          ...(select === "end" && caret >= 0 ? { selection: EditorSelection.cursor(caret), scrollIntoView: true } : {}),
        });
        if (select === "end") {
          this.publishSelection();
        }
      }

      private publishSelection(): void {
        if (doc.closed) {
          return;
        }
        const main = this.view.state.selection.main;
        doc.setPresenceUtf16(main.anchor, main.head, encodeIdentity(identity()));
      }

      /**
       * Redraws the remote selections after the current step: presence events can be raised while the editor is in
       * the middle of an update (a local edit moves the others' carets), when CodeMirror forbids a new dispatch.
       */
      private queueRefresh(): void {
        if (this.refreshQueued) {
          return;
        }
        this.refreshQueued = true;
        queueMicrotask(() => {
          this.refreshQueued = false;
          if (!doc.closed) {
            this.refresh();
          }
        });
      }

      private refresh(): void {
        const length = this.view.state.doc.length;
        const peers: Peer[] = [];
        for (const presence of doc.presences.values()) {
          peers.push(this.peerOf(presence, length));
        }
        peers.sort((a, b) => a.name.localeCompare(b.name) || a.clientId.localeCompare(b.clientId));
        const ranges = [];
        for (const peer of peers) {
          const from = Math.min(peer.anchor, peer.head);
          const to = Math.max(peer.anchor, peer.head);
          if (from < to) {
            ranges.push(
              Decoration.mark({
                class: "cm-remote-selection",
                attributes: { style: `--peer-color: ${peer.color}` },
              }).range(from, to),
            );
          }
          ranges.push(Decoration.widget({ widget: new CaretWidget(peer.name, peer.color, peer.clientId, this.movesOf(peer)), side: 1 }).range(peer.head));
        }
        for (const clientId of this.lastSeen.keys()) {
          if (!doc.presences.has(clientId)) {
            this.lastSeen.delete(clientId);
          }
        }
        this.view.dispatch({ effects: setPeers.of(Decoration.set(ranges, true)) });
        options.onPeers?.(peers);
      }

      /** Counts a peer's own moves; a shift caused by an edit elsewhere is a move too (the label shows where it went). */
      private movesOf(peer: Peer): number {
        const seen = this.lastSeen.get(peer.clientId);
        if (seen !== undefined && seen.anchor === peer.anchor && seen.head === peer.head) {
          return seen.moves;
        }
        const moves = (seen?.moves ?? 0) + 1;
        this.lastSeen.set(peer.clientId, { anchor: peer.anchor, head: peer.head, moves });
        return moves;
      }

      private peerOf(presence: RemotePresence, length: number): Peer {
        const identity = decodeIdentity(presence.userData, presence.clientId);
        return {
          clientId: presence.clientId,
          ...identity,
          anchor: Math.min(doc.toUtf16(presence.anchor), length),
          head: Math.min(doc.toUtf16(presence.head), length),
        };
      }
    },
  );

  const extension = [
    EditorState.lineSeparator.of("\n"),
    peerDecorations,
    plugin,
    keymap.of([
      { key: "Mod-z", run: () => (undoManager.undo(), true), preventDefault: true },
      { key: "Mod-y", run: () => (undoManager.redo(), true), preventDefault: true },
      { key: "Mod-Shift-z", run: () => (undoManager.redo(), true), preventDefault: true },
    ]),
  ];
  return {
    extension,
    publish: (view) => {
      const main = view.state.selection.main;
      if (!doc.closed) {
        doc.setPresenceUtf16(main.anchor, main.head, encodeIdentity(identity()));
      }
    },
  };
}
