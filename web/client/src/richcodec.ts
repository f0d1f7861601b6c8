/**
 * The binary encoding of rich-text ops (docs/OT.md section 20), used in `Submit.op`, `SequencedOp.op` and
 * `Snapshot.content`: `component = tag body [attributes]`, `tag = varint(value << 3 | kind << 1 | a)` with kind 0
 * retain, 1 text insert, 2 embed insert, 3 delete, and JSON values in a compact typed form. Canonical: only
 * normal-form ops, minimal varints, names in ascending UTF-16 order, integral numbers as integers. Held to the C#
 * codec's bytes by the shared vectors in `tests/vectors/rich-op-encoding.json`.
 * @module
 */
import { MalformedOpError } from "./codec.js";
import { Delta, type RichAttributes, type RichComponent } from "./rich.js";

const MAX_LENGTH = 0x7fffffff;
/** Arrays and objects nest at most this deep (C#'s `RichValue.MaxDepth`). */
export const MAX_VALUE_DEPTH = 32;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const KIND_RETAIN = 0;
const KIND_TEXT = 1;
const KIND_EMBED = 2;
const KIND_DELETE = 3;

const TYPE_LITERAL = 0;
const TYPE_INTEGER = 1;
const TYPE_FLOAT = 2;
const TYPE_STRING = 3;
const TYPE_ARRAY = 4;
const TYPE_OBJECT = 5;

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 (overlong forms, surrogates, past U+10FFFF, cut sequences) throws instead of becoming U+FFFD.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Grows as it is written: ops are small, a snapshot is written once. */
class Writer {
  private bytes = new Uint8Array(64);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n > this.bytes.length) {
      const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n));
      grown.set(this.bytes.subarray(0, this.length));
      this.bytes = grown;
    }
  }

  byte(b: number): void {
    this.reserve(1);
    this.bytes[this.length++] = b;
  }

  raw(data: Uint8Array): void {
    this.reserve(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  /** A varint of a non-negative integer; numbers past 2^53 come as bigint. */
  varint(value: number | bigint): void {
    if (typeof value === "bigint") {
      while (value >= 0x80n) {
        this.byte(Number(value & 0x7fn) | 0x80);
        value >>= 7n;
      }
      this.byte(Number(value));
      return;
    }
    while (value >= 0x80) {
      this.byte((value % 128) | 0x80);
      value = Math.floor(value / 128);
    }
    this.byte(value);
  }

  utf8(text: string): void {
    const data = utf8Encoder.encode(text);
    this.varint(data.length);
    this.raw(data);
  }

  result(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

/**
 * Encodes a rich op (a `Delta` or its `ops`). The op must be in normal form (docs/OT.md section 14; what
 * {@link normalizeRichOp} returns): anything else, and values JSON cannot carry, throw {@link MalformedOpError}.
 */
export function encodeRichOp(op: Delta | readonly RichComponent[]): Uint8Array {
  const ops = Array.isArray(op) ? (op as readonly RichComponent[]) : (op as Delta).ops;
  const out = new Writer();
  checkNormalForm(ops);
  for (const c of ops) {
    const attributes = c.attributes;
    const a = attributes !== undefined && attributes !== null && Object.keys(attributes).length > 0 ? 1 : 0;
    if (typeof c.retain === "number") {
      out.varint(c.retain * 8 + KIND_RETAIN * 2 + a);
    } else if (typeof c.delete === "number") {
      if (a === 1) {
        throw new MalformedOpError("A delete carries no attributes.");
      }
      out.varint(c.delete * 8 + KIND_DELETE * 2);
      continue;
    } else if (typeof c.insert === "string") {
      const data = utf8Encoder.encode(c.insert);
      out.varint(data.length * 8 + KIND_TEXT * 2 + a);
      out.raw(data);
    } else {
      const [type, payload] = embedOf(c.insert);
      const name = utf8Encoder.encode(type);
      out.varint(name.length * 8 + KIND_EMBED * 2 + a);
      out.raw(name);
      writeValue(out, payload, 0);
    }
    if (a === 1) {
      writeMembers(out, attributes as RichAttributes, false, 0);
    }
  }
  return out.result();
}

function embedOf(insert: unknown): [string, unknown] {
  if (insert === null || typeof insert !== "object" || Array.isArray(insert)) {
    throw new MalformedOpError(`An insert is text or an embed object, not ${JSON.stringify(insert)}.`);
  }
  const keys = Object.keys(insert);
  if (keys.length !== 1 || keys[0]!.length === 0) {
    throw new MalformedOpError("An embed has exactly one member, with a non-empty name.");
  }
  return [keys[0]!, (insert as Record<string, unknown>)[keys[0]!]];
}

function writeMembers(out: Writer, members: Record<string, unknown>, allowEmptyNames: boolean, depth: number): void {
  // JavaScript's default sort is by UTF-16 code units, as the format requires.
  const names = Object.keys(members).filter((n) => members[n] !== undefined).sort();
  out.varint(names.length);
  for (const name of names) {
    if (name.length === 0 && !allowEmptyNames) {
      throw new MalformedOpError("Attribute names are non-empty.");
    }
    out.utf8(name);
    writeValue(out, members[name], depth);
  }
}

function writeValue(out: Writer, value: unknown, depth: number): void {
  switch (typeof value) {
    case "boolean":
      out.byte(value ? 2 << 3 : 1 << 3);
      return;
    case "number":
      if (!Number.isFinite(value)) {
        throw new MalformedOpError(`A number must be finite, not ${value}.`);
      }
      if (Number.isInteger(value) && Math.abs(value) <= MAX_SAFE) {
        // zigzag(n) << 3 | 1 reaches 2^57: bigint past 2^53.
        const n = BigInt(value);
        const zigzag = n >= 0n ? n * 2n : -n * 2n - 1n;
        out.varint((zigzag << 3n) | BigInt(TYPE_INTEGER));
        return;
      }
      out.byte(TYPE_FLOAT);
      {
        const bytes = new Uint8Array(8);
        new DataView(bytes.buffer).setFloat64(0, value, true);
        out.raw(bytes);
      }
      return;
    case "string": {
      const data = utf8Encoder.encode(value);
      out.varint(data.length * 8 + TYPE_STRING);
      out.raw(data);
      return;
    }
    case "object":
      if (value === null) {
        out.byte(0);
        return;
      }
      if (depth >= MAX_VALUE_DEPTH) {
        throw new MalformedOpError(`Values nest deeper than ${MAX_VALUE_DEPTH} levels.`);
      }
      if (Array.isArray(value)) {
        out.varint(value.length * 8 + TYPE_ARRAY);
        for (const item of value) {
          writeValue(out, item, depth + 1);
        }
        return;
      }
      {
        const record = value as Record<string, unknown>;
        const names = Object.keys(record).filter((n) => record[n] !== undefined).sort();
        out.varint(names.length * 8 + TYPE_OBJECT);
        for (const name of names) {
          out.utf8(name);
          writeValue(out, record[name], depth + 1);
        }
      }
      return;
    default:
      throw new MalformedOpError(`A ${typeof value} is not a JSON value.`);
  }
}

/** Decodes and validates an encoded rich op; throws {@link MalformedOpError} for anything but a canonical encoding. */
export function decodeRichOp(bytes: Uint8Array): Delta {
  return new Delta(new Reader(bytes).op());
}

class Reader {
  private at = 0;

  constructor(private readonly bytes: Uint8Array) {}

  op(): RichComponent[] {
    const ops: RichComponent[] = [];
    let base = 0;
    let target = 0;
    while (this.at < this.bytes.length) {
      const tag = this.varint();
      if (typeof tag === "bigint") {
        throw new MalformedOpError("A component's length exceeds 2^31-1.");
      }
      const a = tag % 2;
      const kind = Math.floor(tag / 2) % 4;
      const value = Math.floor(tag / 8);
      if (value === 0) {
        throw new MalformedOpError("A component of length zero.");
      }
      let component: RichComponent;
      switch (kind) {
        case KIND_RETAIN:
          checkLength(value);
          component = { retain: value };
          base += value;
          target += value;
          break;
        case KIND_DELETE:
          checkLength(value);
          if (a === 1) {
            throw new MalformedOpError("A delete with attributes.");
          }
          component = { delete: value };
          base += value;
          break;
        case KIND_TEXT: {
          const text = this.text(value);
          component = { insert: text };
          target += text.length;
          break;
        }
        default: {
          const type = this.text(value);
          component = { insert: Object.fromEntries([[type, this.value(0)]]) };
          target += 1;
          break;
        }
      }
      if (a === 1) {
        const count = this.count();
        if (count === 0) {
          throw new MalformedOpError("An empty attribute map.");
        }
        component.attributes = this.members(count, false, 0) as RichAttributes;
      }
      if (base > MAX_LENGTH || target > MAX_LENGTH) {
        throw new MalformedOpError("The op's lengths exceed 2^31-1 units.");
      }
      ops.push(component);
    }
    checkNormalForm(ops);
    return ops;
  }

  /** A varint of at most 64 bits, minimal; a number up to 2^53, a bigint past it. */
  private varint(): number | bigint {
    let value = 0;
    let scale = 1;
    const start = this.at;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.bytes.length) {
        throw new MalformedOpError("A varint runs past the end of the input.");
      }
      const b = this.bytes[this.at++]!;
      if (i === 9 && b > 1) {
        throw new MalformedOpError("A varint exceeds 64 bits.");
      }
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) {
          throw new MalformedOpError("A varint is not minimal.");
        }
        if (i < 7) {
          return value + b * scale;
        }
        let big = 0n;
        for (let j = this.at - 1; j >= start; j--) {
          big = (big << 7n) | BigInt(this.bytes[j]! & 0x7f);
        }
        return big <= BigInt(MAX_SAFE) ? Number(big) : big;
      }
      value += (b & 0x7f) * scale;
      scale *= 128;
    }
    throw new MalformedOpError("A varint is longer than 10 bytes.");
  }

  /** A count of items that each take at least one byte of what is left. */
  private count(): number {
    const n = this.varint();
    if (typeof n === "bigint" || n > this.bytes.length - this.at) {
      throw new MalformedOpError("A count runs past the end of the input.");
    }
    return n;
  }

  private text(byteCount: number): string {
    if (byteCount > this.bytes.length - this.at) {
      throw new MalformedOpError("Text runs past the end of the input.");
    }
    const slice = this.bytes.subarray(this.at, this.at + byteCount);
    this.at += byteCount;
    try {
      return utf8Decoder.decode(slice);
    } catch {
      throw new MalformedOpError("Text is not well-formed UTF-8.");
    }
  }

  private members(count: number, allowEmptyNames: boolean, depth: number): Record<string, unknown> {
    const entries: [string, unknown][] = [];
    let previous: string | null = null;
    for (let i = 0; i < count; i++) {
      const length = this.varint();
      if (typeof length === "bigint") {
        throw new MalformedOpError("A name runs past the end of the input.");
      }
      const name = this.text(length);
      if (name.length === 0 && !allowEmptyNames) {
        throw new MalformedOpError("An empty attribute name.");
      }
      if (previous !== null && !(previous < name)) {
        throw new MalformedOpError("Names are not in strictly ascending order.");
      }
      previous = name;
      entries.push([name, this.value(depth)]);
    }
    // fromEntries defines own properties, so a member named "__proto__" is data, not a prototype.
    return Object.fromEntries(entries);
  }

  private value(depth: number): unknown {
    const tag = this.varint();
    if (typeof tag === "bigint") {
      if ((tag & 7n) !== BigInt(TYPE_INTEGER)) {
        throw new MalformedOpError("A value's length runs past the end of the input.");
      }
      const zigzag = tag >> 3n;
      const n = (zigzag & 1n) === 0n ? zigzag >> 1n : -((zigzag + 1n) >> 1n);
      if (n > BigInt(MAX_SAFE) || n < -BigInt(MAX_SAFE)) {
        throw new MalformedOpError("An integer past 2^53-1.");
      }
      return Number(n);
    }
    const type = tag % 8;
    const payload = Math.floor(tag / 8);
    switch (type) {
      case TYPE_LITERAL:
        if (payload > 2) {
          throw new MalformedOpError(`Unknown literal ${payload}.`);
        }
        return payload === 0 ? null : payload === 2;
      case TYPE_INTEGER: {
        const n = payload % 2 === 0 ? payload / 2 : -(payload + 1) / 2;
        if (Math.abs(n) > MAX_SAFE) {
          throw new MalformedOpError("An integer past 2^53-1.");
        }
        return n === 0 ? 0 : n;
      }
      case TYPE_FLOAT: {
        if (payload !== 0) {
          throw new MalformedOpError("A float with a payload.");
        }
        if (this.bytes.length - this.at < 8) {
          throw new MalformedOpError("A float runs past the end of the input.");
        }
        const n = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.at, 8).getFloat64(0, true);
        this.at += 8;
        if (!Number.isFinite(n)) {
          throw new MalformedOpError("A float that is not finite.");
        }
        if (Number.isInteger(n) && Math.abs(n) <= MAX_SAFE) {
          throw new MalformedOpError("An integral float (it must be an integer).");
        }
        return n;
      }
      case TYPE_STRING:
        return this.text(payload);
      case TYPE_ARRAY: {
        if (depth >= MAX_VALUE_DEPTH) {
          throw new MalformedOpError(`Values nest deeper than ${MAX_VALUE_DEPTH} levels.`);
        }
        if (payload > this.bytes.length - this.at) {
          throw new MalformedOpError("A count runs past the end of the input.");
        }
        const items: unknown[] = [];
        for (let i = 0; i < payload; i++) {
          items.push(this.value(depth + 1));
        }
        return items;
      }
      case TYPE_OBJECT:
        if (depth >= MAX_VALUE_DEPTH) {
          throw new MalformedOpError(`Values nest deeper than ${MAX_VALUE_DEPTH} levels.`);
        }
        if (payload > this.bytes.length - this.at) {
          throw new MalformedOpError("A count runs past the end of the input.");
        }
        return this.members(payload, true, depth + 1);
      default:
        throw new MalformedOpError(`Reserved value type ${type}.`);
    }
  }
}

function checkLength(n: number): void {
  if (n > MAX_LENGTH) {
    throw new MalformedOpError(`Length ${n} exceeds 2^31-1.`);
  }
}

/** Throws unless `ops` is in quill-delta's normal form (docs/OT.md section 14): what `push` then `chop` build. */
function checkNormalForm(ops: readonly RichComponent[]): void {
  let previous: RichComponent | undefined;
  for (const c of ops) {
    if (previous !== undefined) {
      if (typeof c.delete === "number" && typeof previous.delete === "number") {
        throw new MalformedOpError("Two adjacent deletes (not normal form).");
      }
      if (c.insert !== undefined && typeof previous.delete === "number") {
        throw new MalformedOpError("An insert after a delete (not normal form).");
      }
      const mergesText = typeof c.insert === "string" && typeof previous.insert === "string";
      const mergesRetain = typeof c.retain === "number" && typeof previous.retain === "number";
      if ((mergesText || mergesRetain) && sameAttributes(c.attributes, previous.attributes)) {
        throw new MalformedOpError("Two adjacent components that merge (not normal form).");
      }
    }
    previous = c;
  }
  if (previous !== undefined && typeof previous.retain === "number" && (previous.attributes === undefined || Object.keys(previous.attributes).length === 0)) {
    throw new MalformedOpError("A trailing retain without attributes (not normal form).");
  }
}

function sameAttributes(a: RichAttributes | undefined, b: RichAttributes | undefined): boolean {
  const emptyA = a === undefined || Object.keys(a).length === 0;
  const emptyB = b === undefined || Object.keys(b).length === 0;
  return emptyA || emptyB ? emptyA === emptyB : deepEqual(a, b);
}

/** lodash's `isEqual` over JSON values (object members unordered), as quill-delta compares attributes. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) {
    return false;
  }
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((item, i) => deepEqual(item, other[i]));
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = Object.keys(ra);
  return keys.length === Object.keys(rb).length && keys.every((k) => Object.prototype.hasOwnProperty.call(rb, k) && deepEqual(ra[k], rb[k]));
}
