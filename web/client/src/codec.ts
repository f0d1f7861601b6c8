/**
 * The binary encoding of text ops (docs/OT.md section 8), used in `Submit.op` and `SequencedOp.op`:
 * `op = *component; component = varint(length << 2 | kind) [utf8]` with kind 0 retain, 1 insert (length = UTF-8
 * bytes, then the bytes), 2 delete. Canonical: only normal-form ops, minimal varints. Held to the C# codec's bytes by
 * the shared vectors in `tests/vectors/text-op-encoding.json`.
 * @module
 */
import { codePointLength, normalize, type TextOp, type TextOpComponent } from "./text.js";

/** Bytes that are not the encoding of a normal-form text op. */
export class MalformedOpError extends Error {
  override name = "MalformedOpError";
}

const MAX_LENGTH = 0x7fffffff;
const KIND_RETAIN = 0;
const KIND_INSERT = 1;
const KIND_DELETE = 2;

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 (overlong forms, surrogates, past U+10FFFF, cut sequences) throws instead of becoming U+FFFD.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Encodes `op` (normalised first; `{d: "text"}` counts as a delete of its code points). */
export function encodeTextOp(op: readonly TextOpComponent[]): Uint8Array {
  const normal = normalize(op);
  const parts: (number | Uint8Array)[] = [];
  let size = 0;
  let base = 0;
  let target = 0;
  for (const c of normal) {
    let kind: number;
    let length: number;
    if (typeof c === "number") {
      kind = KIND_RETAIN;
      length = c;
      base += c;
      target += c;
    } else if (typeof c === "string") {
      const bytes = utf8Encoder.encode(c);
      kind = KIND_INSERT;
      length = bytes.length;
      target += codePointLength(c);
      parts.push(tag(length, kind));
      parts.push(bytes);
      size += varintSize(tag(length, kind)) + bytes.length;
      continue;
    } else {
      kind = KIND_DELETE;
      length = c.d as number;
      base += length;
    }
    parts.push(tag(length, kind));
    size += varintSize(tag(length, kind));
  }
  if (base > MAX_LENGTH || target > MAX_LENGTH) {
    throw new MalformedOpError("The op's lengths exceed 2^31-1 code points.");
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    if (typeof part === "number") {
      at = writeVarint(out, at, part);
    } else {
      out.set(part, at);
      at += part.length;
    }
  }
  return out;
}

/** Decodes and validates an encoded op; throws {@link MalformedOpError} for anything but a canonical encoding. */
export function decodeTextOp(bytes: Uint8Array): TextOp {
  const op: TextOp = [];
  let at = 0;
  let lastKind = -1;
  let base = 0;
  let target = 0;
  while (at < bytes.length) {
    const [value, next] = readVarint(bytes, at);
    at = next;
    const kind = value % 4;
    const length = Math.floor(value / 4);
    if (kind === 3) {
      throw new MalformedOpError("Reserved component kind 3.");
    }
    if (length === 0 || length > MAX_LENGTH) {
      throw new MalformedOpError(`Component length ${length} outside 1..2^31-1.`);
    }
    if (kind === lastKind) {
      throw new MalformedOpError("Two adjacent components of one kind (not normal form).");
    }
    lastKind = kind;
    if (kind === KIND_RETAIN) {
      op.push(length);
      base += length;
      target += length;
    } else if (kind === KIND_DELETE) {
      op.push({ d: length });
      base += length;
    } else {
      if (length > bytes.length - at) {
        throw new MalformedOpError("An insert runs past the end of the input.");
      }
      let text: string;
      try {
        text = utf8Decoder.decode(bytes.subarray(at, at + length));
      } catch {
        throw new MalformedOpError("An insert is not well-formed UTF-8.");
      }
      at += length;
      op.push(text);
      target += codePointLength(text);
    }
    if (base > MAX_LENGTH || target > MAX_LENGTH) {
      throw new MalformedOpError("The op's lengths exceed 2^31-1 code points.");
    }
  }
  if (lastKind === KIND_RETAIN) {
    throw new MalformedOpError("A trailing retain (not normal form).");
  }
  return op;
}

function tag(length: number, kind: number): number {
  // Up to 33 bits: arithmetic, not 32-bit shifts.
  return length * 4 + kind;
}

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[at++] = value;
  return at;
}

function readVarint(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 5; i++) {
    if (at >= bytes.length) {
      throw new MalformedOpError("A varint runs past the end of the input.");
    }
    const b = bytes[at++]!;
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) {
      if (b === 0 && i > 0) {
        throw new MalformedOpError("A varint is not minimal.");
      }
      return [value, at];
    }
    scale *= 128;
  }
  throw new MalformedOpError("A varint is longer than 5 bytes.");
}
