/**
 * The `text-unicode` OT type (docs/OT.md) as the SDK uses it: ShareDB's `ot-text-unicode` package for apply,
 * transform, compose and invert, plus the few things the package leaves out (cursor transform with `isOwnOp`, a
 * two-way diff, validation against a document length, conversions between code points and UTF-16 offsets).
 *
 * Every position and length here counts Unicode code points, as on the wire. Browser editors count UTF-16 code
 * units: convert with {@link codePointToUtf16} / {@link utf16ToCodePoint}, or build ops from editor changes with
 * {@link opFromUtf16Changes} and turn ops into editor changes with {@link opToUtf16Changes}.
 * @module
 */
import { type as textUnicode } from "ot-text-unicode";
import { strPosToUni, uniToStrPos } from "unicount";

/**
 * One component of a text op: a number retains (skips) that many code points, a string inserts it, `{d: n}`
 * deletes n code points. (`{d: "text"}`, text-unicode's invertible form, is accepted as input and normalised to a
 * count.)
 */
export type TextOpComponent = number | string | { d: number | string };

/** A text op: components that walk the document from its start; the rest of the document is kept. */
export type TextOp = TextOpComponent[];

/** Which op goes first when two concurrent ops insert at the same position: `left` does. */
export type TransformSide = "left" | "right";

/** A text op that does not fit the document or is not a valid op. */
export class InvalidOpError extends Error {
  override name = "InvalidOpError";
}

/** The name of the OT type on the wire (`Snapshot.type`). */
export const TEXT_TYPE_NAME = "text-unicode";

/** The op that changes nothing. */
export const EMPTY_OP: TextOp = [];

/** Code points in `text` (a string of well-formed UTF-16). */
export function codePointLength(text: string): number {
  return strPosToUni(text);
}

/** The UTF-16 offset of code point `position` in `text` (positions past the end clamp to the end). */
export function codePointToUtf16(text: string, position: number): number {
  return Math.min(uniToStrPos(text, position), text.length);
}

/**
 * The code point position of UTF-16 offset `offset` in `text`. An offset inside a surrogate pair (which no editor
 * produces) counts the pair as passed.
 */
export function utf16ToCodePoint(text: string, offset: number): number {
  return strPosToUni(text, Math.min(Math.max(0, offset), text.length));
}

/** `text` has no lone surrogate (the wire carries UTF-8, which cannot encode one). */
export function isWellFormed(text: string): boolean {
  const native = (text as { isWellFormed?: () => boolean }).isWellFormed;
  if (native !== undefined) {
    return native.call(text);
  }
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

/**
 * The op in normal form (docs/OT.md section 2): no empty components, no two adjacent components of one kind, no
 * trailing retain, deletes as counts. Throws {@link InvalidOpError} for something that is not a text op.
 */
export function normalize(op: readonly TextOpComponent[]): TextOp {
  if (!Array.isArray(op)) {
    throw new InvalidOpError("A text op is an array of components.");
  }
  const out: TextOp = [];
  for (const component of op) {
    if (typeof component === "number") {
      checkLength(component);
      if (component === 0) {
        continue;
      }
      const last = out[out.length - 1];
      if (typeof last === "number") {
        out[out.length - 1] = last + component;
      } else {
        out.push(component);
      }
    } else if (typeof component === "string") {
      if (!isWellFormed(component)) {
        throw new InvalidOpError("Inserted text holds a lone surrogate.");
      }
      if (component.length === 0) {
        continue;
      }
      const last = out[out.length - 1];
      if (typeof last === "string") {
        out[out.length - 1] = last + component;
      } else {
        out.push(component);
      }
    } else if (component !== null && typeof component === "object" && "d" in component) {
      const n = typeof component.d === "string" ? codePointLength(component.d) : component.d;
      checkLength(n);
      if (n === 0) {
        continue;
      }
      const last = out[out.length - 1];
      if (last !== undefined && typeof last === "object") {
        out[out.length - 1] = { d: (last.d as number) + n };
      } else {
        out.push({ d: n });
      }
    } else {
      throw new InvalidOpError(`Unknown op component ${JSON.stringify(component)}.`);
    }
  }
  if (typeof out[out.length - 1] === "number") {
    out.pop();
  }
  return out;
}

function checkLength(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0x7fffffff) {
    throw new InvalidOpError(`Invalid component length ${n}.`);
  }
}

/** The op changes nothing. */
export function isNoop(op: readonly TextOpComponent[]): boolean {
  return op.length === 0;
}

/** Code points the op reads: the shortest document it applies to (retains and deletes). */
export function baseLength(op: readonly TextOpComponent[]): number {
  let n = 0;
  for (const c of op) {
    if (typeof c === "number") {
      n += c;
    } else if (typeof c === "object") {
      n += typeof c.d === "number" ? c.d : codePointLength(c.d);
    }
  }
  return n;
}

/** Throws {@link InvalidOpError} unless `op` (in normal form) applies to a document of `length` code points. */
export function checkFits(op: readonly TextOpComponent[], length: number): void {
  const base = baseLength(op);
  if (base > length) {
    throw new InvalidOpError(`The op reaches code point ${base}, beyond the document's ${length}.`);
  }
}

/** Applies `op` to `text`. Throws {@link InvalidOpError} when it does not fit. */
export function apply(text: string, op: readonly TextOpComponent[]): string {
  checkFits(op, codePointLength(text));
  return textUnicode.apply(text, op as TextOp);
}

/** `op` rewritten to apply after `other` (both made against one document); `side` breaks insert ties. */
export function transform(op: TextOp, other: TextOp, side: TransformSide): TextOp {
  if (op.length === 0 || other.length === 0) {
    return op;
  }
  return textUnicode.transform(op, other, side);
}

/** One op with the effect of `a` then `b`. */
export function compose(a: TextOp, b: TextOp): TextOp {
  if (a.length === 0) {
    return b;
  }
  if (b.length === 0) {
    return a;
  }
  return textUnicode.compose(a, b);
}

/** The op that undoes `op`, which was applied to `before`: `apply(apply(d, op), invert(op, d)) == d`. */
export function invert(op: TextOp, before: string): TextOp {
  if (op.length === 0) {
    return op;
  }
  const inverted = (textUnicode as unknown as { invertWithDoc(op: TextOp, doc: string): TextOp }).invertWithDoc(op, before);
  return normalize(inverted);
}

/**
 * Moves a code point position through `op` (docs/OT.md section 7): an insert exactly at the cursor leaves it in
 * place, unless `isOwnOp` (the cursor's owner made the op: the caret follows its own typing); a cursor inside a
 * deleted range moves to its start.
 */
export function transformCursor(cursor: number, op: readonly TextOpComponent[], isOwnOp: boolean): number {
  let pos = 0;
  for (const c of op) {
    if (cursor < pos || (cursor === pos && !(isOwnOp && typeof c === "string"))) {
      break;
    }
    if (typeof c === "number") {
      pos += c;
    } else if (typeof c === "string") {
      const n = codePointLength(c);
      pos += n;
      cursor += n;
    } else {
      const n = typeof c.d === "number" ? c.d : codePointLength(c.d);
      cursor -= Math.min(n, cursor - pos);
    }
  }
  return cursor;
}

/** An op inserting `text` at code point `position`. */
export function insertOp(position: number, text: string): TextOp {
  return normalize([position, text]);
}

/** An op deleting `length` code points at `position`. */
export function deleteOp(position: number, length: number): TextOp {
  return normalize([position, { d: length }]);
}

/**
 * The smallest single-replace op turning `before` into `after` (common prefix and suffix kept, never splitting a
 * surrogate pair). Used for snapshot rebases (PROTOCOL.md section 7.3) and to describe them as one change.
 */
export function diff(before: string, after: string): TextOp {
  const max = Math.min(before.length, after.length);
  let prefix = 0;
  while (prefix < max && before.charCodeAt(prefix) === after.charCodeAt(prefix)) {
    prefix++;
  }
  if (prefix > 0 && isHighSurrogate(before.charCodeAt(prefix - 1))) {
    prefix--;
  }
  let suffix = 0;
  while (suffix < max - prefix && before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)) {
    suffix++;
  }
  if (suffix > 0 && isLowSurrogate(before.charCodeAt(before.length - suffix))) {
    suffix--;
  }
  const deleted = before.slice(prefix, before.length - suffix);
  const inserted = after.slice(prefix, after.length - suffix);
  return normalize([codePointLength(before.slice(0, prefix)), { d: codePointLength(deleted) }, inserted]);
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/**
 * A change in UTF-16 offsets of the text before it: replace `[from, to)` with `insert`. The shape of a CodeMirror 6
 * change spec and of most editors' change events.
 */
export interface Utf16Change {
  /** Start offset (UTF-16 code units) in the text before the change. */
  from: number;
  /** End offset (exclusive); equal to `from` for a pure insertion. */
  to: number;
  /** The text put in place of `[from, to)`; empty for a pure deletion. */
  insert: string;
}

/**
 * The op for a set of editor changes against `text`, all in UTF-16 offsets of `text` (non-overlapping, in any order),
 * as editors such as CodeMirror report them.
 */
export function opFromUtf16Changes(text: string, changes: readonly Utf16Change[]): TextOp {
  const sorted = [...changes].sort((a, b) => a.from - b.from || a.to - b.to);
  const op: TextOp = [];
  let at = 0; // UTF-16 offset reached
  for (const change of sorted) {
    if (change.from < at || change.to < change.from || change.to > text.length) {
      throw new InvalidOpError(`Change [${change.from}, ${change.to}) overlaps another one or lies outside the text (${text.length} UTF-16 units).`);
    }
    op.push(codePointLength(text.slice(at, change.from)));
    op.push({ d: codePointLength(text.slice(change.from, change.to)) });
    op.push(change.insert);
    at = change.to;
  }
  return normalize(op);
}

/**
 * The editor changes for `op` applied to `before`: UTF-16 offsets of `before`, ascending, non-overlapping (what
 * CodeMirror's `dispatch({changes})` takes).
 */
export function opToUtf16Changes(before: string, op: readonly TextOpComponent[]): Utf16Change[] {
  const changes: Utf16Change[] = [];
  let offset = 0; // UTF-16 offset in `before`
  let rest = before;
  const take = (codePoints: number): number => {
    const units = uniToStrPos(rest, codePoints);
    rest = rest.slice(units);
    return units;
  };
  for (const c of op) {
    if (typeof c === "number") {
      offset += take(c);
    } else if (typeof c === "string") {
      const last = changes[changes.length - 1];
      if (last !== undefined && last.to === offset) {
        last.insert += c;
      } else {
        changes.push({ from: offset, to: offset, insert: c });
      }
    } else {
      const units = take(typeof c.d === "number" ? c.d : codePointLength(c.d));
      const last = changes[changes.length - 1];
      if (last !== undefined && last.to === offset) {
        last.to += units;
      } else {
        changes.push({ from: offset, to: offset + units, insert: "" });
      }
      offset += units;
    }
  }
  return changes;
}
