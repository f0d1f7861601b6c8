/**
 * Undo and redo of the local user's own edits in a collaborative document: undoing never touches other users'
 * work. Each step is stored as the inverse of the user's edit; every op applied after it (a remote op, a resync)
 * transforms it, so that when it is finally applied it removes exactly what the user did, where it now is.
 * @module
 */
import type { OtType } from "./ottype.js";
import type { SyncDocument } from "./sync.js";
import type { TextOp } from "./text.js";

/** Settings of an {@link UndoManager}. */
export interface UndoManagerOptions {
  /**
   * Local edits closer together than this (ms) merge into one undo step, so undo removes a typed word rather than a
   * letter. 0 makes every edit its own step. Default 500.
   */
  captureTimeoutMs?: number;
  /** Most undo steps kept (the oldest are dropped). Default 500. */
  maxSteps?: number;
  /** The clock for `captureTimeoutMs`; default `Date.now`. */
  now?: () => number;
}

/**
 * Undo/redo history of one document's local edits (a text or a rich-text document: steps are inverted, composed and
 * transformed by the document's own type). Edits made through the document by the application are
 * recorded; remote changes move the history along; {@link undo} and {@link redo} submit the inverse as a new edit.
 *
 * Stack discipline (ot.js / ShareDB): the top step applies to the current text, each step below it to the text after
 * the step above it was undone. A new op `r` applied to the text transforms the top step `u` into `u' = T(u, r)`, and
 * carries on down the stack as `r' = T(r, u)`.
 */
export class UndoManager<D = string, O = TextOp> {
  private readonly undoStack: O[] = [];
  private readonly redoStack: O[] = [];
  private readonly type: OtType<D, O>;
  private readonly captureTimeoutMs: number;
  private readonly maxSteps: number;
  private readonly now: () => number;
  private readonly unsubscribe: () => void;
  private lastEditAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly document: SyncDocument<D, O, any, any>,
    options?: UndoManagerOptions,
  ) {
    this.type = document.type;
    this.captureTimeoutMs = options?.captureTimeoutMs ?? 500;
    this.maxSteps = options?.maxSteps ?? 500;
    this.now = options?.now ?? Date.now;
    // Synchronously, as each change is applied: an undo requested from an event listener must see stacks that match
    // the document's text, not the text of the event being delivered.
    this.unsubscribe = document.observe((op, previousText, local, origin) => {
      if (!local) {
        this.transformStack(this.undoStack, op);
        this.transformStack(this.redoStack, op);
      } else if (origin !== "undo" && origin !== "redo") {
        this.record(op, previousText);
      }
    });
  }

  /** There is an edit of this user to undo. */
  get canUndo(): boolean {
    return this.undoStack.length > 0;
  }

  /** There is an undone edit to redo. */
  get canRedo(): boolean {
    return this.redoStack.length > 0;
  }

  /** Undoes the user's latest edit (as moved by everything since). False when there is nothing to undo. */
  undo(): boolean {
    return this.step(this.undoStack, this.redoStack, "undo");
  }

  /** Redoes the latest undone edit. False when there is nothing to redo. */
  redo(): boolean {
    return this.step(this.redoStack, this.undoStack, "redo");
  }

  /** Starts a new undo step at the next edit even if it comes within the capture timeout. */
  stopCapturing(): void {
    this.lastEditAt = Number.NEGATIVE_INFINITY;
  }

  /** Forgets the whole history. */
  clear(): void {
    this.undoStack.length = 0;
    this.redoStack.length = 0;
    this.stopCapturing();
  }

  /** Stops following the document. */
  dispose(): void {
    this.unsubscribe();
    this.clear();
  }

  private step(from: O[], to: O[], origin: "undo" | "redo"): boolean {
    // A step that others' edits have emptied (they deleted everything it would touch) is skipped, not replayed as a
    // keypress that visibly does nothing.
    for (let op = from.pop(); op !== undefined; op = from.pop()) {
      if (this.type.isNoop(op)) {
        continue;
      }
      const before = this.document.current;
      try {
        this.document.submitInternal(op, origin);
      } catch (error) {
        from.push(op);
        throw error;
      }
      to.push(this.type.invert(op, before));
      this.stopCapturing();
      return true;
    }
    return false;
  }

  private record(op: O, previous: D): void {
    const inverse = this.type.invert(op, previous);
    this.redoStack.length = 0;
    const now = this.now();
    const top = this.undoStack[this.undoStack.length - 1];
    if (top !== undefined && now - this.lastEditAt < this.captureTimeoutMs) {
      // Merge: undoing both is undoing the new edit, then the older one.
      this.undoStack[this.undoStack.length - 1] = this.type.compose(inverse, top);
    } else {
      this.undoStack.push(inverse);
      if (this.undoStack.length > this.maxSteps) {
        this.undoStack.shift();
      }
    }
    this.lastEditAt = now;
  }

  private transformStack(stack: O[], op: O): void {
    let r = op;
    for (let i = stack.length - 1; i >= 0 && !this.type.isNoop(r); i--) {
      const u = stack[i]!;
      stack[i] = this.type.transform(u, r, "left");
      r = this.type.transform(r, u, "right");
    }
  }
}
