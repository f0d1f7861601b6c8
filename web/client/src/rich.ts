/**
 * The `rich-text` OT type (docs/OT.md sections 12 to 21) as the SDK uses it: Quill's Delta format with the semantics
 * of ShareDB's `rich-text` 4.1.0, computed with `quill-delta` 5.1.0 — the Delta Quill 2 itself ships, so a page with
 * Quill bundles one Delta. `rich-text`'s functions are one-line wrappers over Delta (the differential test in
 * `rich.test` holds these to `rich-text` 4.1.0 on random cases); what it leaves out is here: validation of
 * components, the document-length and surrogate-pair checks the server makes.
 *
 * Positions and lengths count UTF-16 code units (JavaScript's `string.length`, what Quill counts); an embed counts 1.
 * @module
 */
import DeltaModule from "quill-delta";
import type { AttributeMap, Op } from "quill-delta";
import { InvalidOpError, isWellFormed, type TransformSide } from "./text.js";

// quill-delta is CommonJS (`module.exports = Delta`, and `.default = Delta`): under TypeScript's NodeNext resolution
// the default import is that module object, whose `default` is the class at run time in Node and in bundles alike.
type DeltaClass = typeof DeltaModule.default;
/** quill-delta's `Delta` class (re-exported: Quill's deltas and the SDK's are the same class). */
export const Delta: DeltaClass = DeltaModule.default;
/** A delta: an op, or (inserts only) a document. */
export type Delta = InstanceType<DeltaClass>;

/** One component of a rich op (quill-delta's `Op`): `{insert, attributes?}`, `{retain, attributes?}` or `{delete}`. */
export type RichComponent = Op;

/** Formats of a component: names to JSON values (`null` on a retain removes the format). */
export type RichAttributes = AttributeMap;

/** What rich-op functions accept: a Delta, its `ops`, or `{ops}`. */
export type RichOpInput = Delta | readonly RichComponent[] | { ops: readonly RichComponent[] };

/** The name of the OT type on the wire (`Subscribe.type`, `Snapshot.type`). */
export const RICH_TEXT_TYPE_NAME = "rich-text";

const MAX_LENGTH = 0x7fffffff;

/**
 * The op in normal form (docs/OT.md section 14: what quill-delta's `push` then `chop` build), after checking every
 * component. Throws {@link InvalidOpError} for something that is not a rich op: unknown component shapes, lengths that
 * are not positive integers, embeds without exactly one member, retains of embeds (Quill's embed handlers are not part
 * of `rich-text`), attributes on a delete, text with a lone surrogate.
 */
export function normalizeRichOp(op: RichOpInput): Delta {
  const ops = Array.isArray(op) ? (op as readonly RichComponent[]) : (op as { ops?: unknown }).ops;
  if (!Array.isArray(ops)) {
    throw new InvalidOpError("A rich op is a Delta, or an array of components.");
  }
  const out = new Delta();
  for (const c of ops as unknown[]) {
    out.push(checkComponent(c));
  }
  const normal = out.chop();
  const base = richBaseLength(normal);
  const target = normal.ops.reduce((n, c) => n + (c.delete !== undefined ? 0 : componentLength(c)), 0);
  if (base > MAX_LENGTH || target > MAX_LENGTH) {
    throw new InvalidOpError("The op's lengths exceed 2^31-1 units.");
  }
  return normal;
}

function checkComponent(c: unknown): RichComponent {
  if (c === null || typeof c !== "object") {
    throw new InvalidOpError(`Unknown op component ${JSON.stringify(c)}.`);
  }
  const component = c as Record<string, unknown>;
  const keys = Object.keys(component).filter((k) => component[k] !== undefined);
  const attributes = component["attributes"];
  if (attributes !== undefined && attributes !== null && (typeof attributes !== "object" || Array.isArray(attributes))) {
    throw new InvalidOpError("A component's attributes are an object.");
  }
  const kinds = keys.filter((k) => k !== "attributes");
  if (kinds.length !== 1) {
    throw new InvalidOpError(`A component is one of insert, retain or delete: ${JSON.stringify(c)}.`);
  }
  const kind = kinds[0]!;
  const value = component[kind];
  const formats = attributes === null || attributes === undefined || Object.keys(attributes).length === 0 ? undefined : (attributes as RichAttributes);
  if (formats !== undefined) {
    for (const name of Object.keys(formats)) {
      if (name.length === 0 || !isWellFormed(name)) {
        throw new InvalidOpError("Attribute names are non-empty, well-formed text.");
      }
    }
  }
  switch (kind) {
    case "insert":
      if (typeof value === "string") {
        if (!isWellFormed(value)) {
          throw new InvalidOpError("Inserted text holds a lone surrogate.");
        }
        return formats === undefined ? { insert: value } : { insert: value, attributes: formats };
      }
      if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 1 && Object.keys(value)[0]!.length > 0) {
        return formats === undefined ? { insert: value as Record<string, unknown> } : { insert: value as Record<string, unknown>, attributes: formats };
      }
      throw new InvalidOpError("An insert is text, or an embed: an object with exactly one member.");
    case "retain":
      checkLength(value);
      return formats === undefined ? { retain: value as number } : { retain: value as number, attributes: formats };
    case "delete":
      checkLength(value);
      if (formats !== undefined) {
        throw new InvalidOpError("A delete carries no attributes.");
      }
      return { delete: value as number };
    default:
      throw new InvalidOpError(`Unknown op component ${JSON.stringify(c)}.`);
  }
}

function checkLength(n: unknown): void {
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0 || n > MAX_LENGTH) {
    throw new InvalidOpError(`Invalid component length ${String(n)}.`);
  }
}

function componentLength(c: RichComponent): number {
  if (typeof c.insert === "string") {
    return c.insert.length;
  }
  if (c.insert !== undefined) {
    return 1;
  }
  return typeof c.retain === "number" ? c.retain : (c.delete ?? 0);
}

/** Units the op reads: the shortest document it applies to (retains and deletes). */
export function richBaseLength(op: Delta): number {
  let n = 0;
  for (const c of op.ops) {
    if (c.insert === undefined) {
      n += componentLength(c);
    }
  }
  return n;
}

/**
 * Throws {@link InvalidOpError} unless `op` applies to `document` as the server would accept it: its base length
 * within the document (`OpTooLong`), and no component boundary between the two halves of a surrogate pair
 * (`SplitsSurrogatePair`, docs/OT.md section 13).
 */
export function checkRichFits(op: Delta, document: Delta): void {
  const length = document.length();
  const base = richBaseLength(op);
  if (base > length) {
    throw new InvalidOpError(`The op reaches unit ${base}, beyond the document's ${length}.`);
  }
  // The positions (in the document) where the op starts or ends a retain or delete, in ascending order.
  const cuts: number[] = [];
  let at = 0;
  for (const c of op.ops) {
    if (c.insert !== undefined) {
      cuts.push(at);
    } else {
      cuts.push(at);
      at += componentLength(c);
      cuts.push(at);
    }
  }
  let next = 0;
  let start = 0;
  for (const piece of document.ops) {
    const text = typeof piece.insert === "string" ? piece.insert : null;
    const end = start + (text === null ? 1 : text.length);
    while (next < cuts.length && cuts[next]! <= start) {
      next++;
    }
    for (; next < cuts.length && cuts[next]! < end; next++) {
      const offset = cuts[next]! - start;
      const unit = text!.charCodeAt(offset);
      if (unit >= 0xdc00 && unit <= 0xdfff) {
        throw new InvalidOpError(`The op cuts the surrogate pair at unit ${cuts[next]! - 1}.`);
      }
    }
    if (next >= cuts.length) {
      return;
    }
    start = end;
  }
}

/** Applies `op` to `document` (rich-text's apply: the document composed with the op). Throws when it does not fit. */
export function applyRich(document: Delta, op: Delta): Delta {
  checkRichFits(op, document);
  return document.compose(op);
}

/**
 * `op` rewritten to apply after `other` (both made against one document). rich-text's convention (docs/OT.md
 * section 16): with `left`, **`other` has priority** (its insert comes first at a tie, its format stands).
 */
export function transformRich(op: Delta, other: Delta, side: TransformSide): Delta {
  if (op.ops.length === 0 || other.ops.length === 0) {
    return op;
  }
  return other.transform(op, side === "left");
}

/** One op with the effect of `a` then `b`. */
export function composeRich(a: Delta, b: Delta): Delta {
  if (a.ops.length === 0) {
    return b;
  }
  if (b.ops.length === 0) {
    return a;
  }
  return a.compose(b);
}

/** The op that undoes `op`, which was applied to `before`: `apply(apply(d, op), invert(op, d)) == d`. */
export function invertRich(op: Delta, before: Delta): Delta {
  return op.invert(before);
}

/**
 * Moves a UTF-16 position through `op` (docs/OT.md section 19): an insert exactly at the cursor moves it only if
 * `isOwnOp` (the caret follows its own typing); a cursor inside a deleted range moves to its start.
 */
export function transformRichCursor(cursor: number, op: Delta, isOwnOp: boolean): number {
  return op.transformPosition(cursor, !isOwnOp);
}

/** The op turning document `before` into document `after` (both insert-only), for a snapshot rebase. */
export function diffRich(before: Delta, after: Delta): Delta {
  return before.diff(after);
}
