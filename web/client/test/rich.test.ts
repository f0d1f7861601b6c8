import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import richText from "rich-text";
import { MalformedOpError } from "../src/codec.js";
import {
  applyRich,
  checkRichFits,
  composeRich,
  Delta,
  invertRich,
  normalizeRichOp,
  type RichComponent,
  transformRich,
  transformRichCursor,
} from "../src/rich.js";
import { decodeRichOp, encodeRichOp } from "../src/richcodec.js";
import { InvalidOpError } from "../src/text.js";
import { repoRoot } from "./paths.js";

// CommonJS: the default import is module.exports.
const { Delta: OracleDelta, type: oracle } = richText;

interface Vectors {
  valid: { op: RichComponent[]; hex: string }[];
  malformed: { hex: string; reason: string }[];
}

const vectors = JSON.parse(readFileSync(join(repoRoot(), "tests", "vectors", "rich-op-encoding.json"), "utf8")) as Vectors;
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "hex"));

describe("rich op codec against the C# codec's vectors (tests/vectors/rich-op-encoding.json)", () => {
  it("has vectors to replay", () => {
    assert.ok(vectors.valid.length >= 80);
    assert.ok(vectors.malformed.length >= 40);
  });

  it("encodes every op to the C# bytes", () => {
    for (const vector of vectors.valid) {
      assert.equal(hex(encodeRichOp(normalizeRichOp(vector.op))), vector.hex, JSON.stringify(vector.op));
    }
  });

  it("decodes every encoding back to the op", () => {
    for (const vector of vectors.valid) {
      assert.deepEqual(decodeRichOp(bytes(vector.hex)).ops, vector.op, vector.hex);
    }
  });

  it("rejects every malformed input the C# decoder rejects, with MalformedOpError", () => {
    for (const vector of vectors.malformed) {
      assert.throws(() => decodeRichOp(bytes(vector.hex)), MalformedOpError, `${vector.hex} (${vector.reason}) was accepted`);
    }
  });
});

describe("rich op codec", () => {
  it("rejects values JSON cannot carry and ops not in normal form", () => {
    assert.throws(() => encodeRichOp([{ retain: 1, attributes: { size: Number.NaN } }]), MalformedOpError);
    assert.throws(() => encodeRichOp([{ retain: 1, attributes: { f: () => 1 } }]), MalformedOpError);
    assert.throws(() => encodeRichOp([{ retain: 2 }]), MalformedOpError);
    assert.throws(() => encodeRichOp([{ delete: 1 }, { delete: 1 }]), MalformedOpError);
    let deep: unknown = 1;
    for (let i = 0; i < 33; i++) {
      deep = [deep];
    }
    assert.throws(() => encodeRichOp([{ retain: 1, attributes: { deep } }]), MalformedOpError);
  });

  it("writes integral numbers as integers, -0 as 0, and reads a member named __proto__ as data", () => {
    assert.equal(hex(encodeRichOp([{ retain: 1, attributes: { a: -0 } }])), hex(encodeRichOp([{ retain: 1, attributes: { a: 0 } }])));
    const op = [{ insert: { x: Object.fromEntries([["__proto__", 1]]) } }];
    const decoded = decodeRichOp(encodeRichOp(op));
    assert.deepEqual(Object.keys(decoded.ops[0]!.insert as object), ["x"]);
    assert.equal(Object.getPrototypeOf((decoded.ops[0]!.insert as { x: object }).x), Object.prototype);
    assert.ok(Object.prototype.hasOwnProperty.call((decoded.ops[0]!.insert as { x: object }).x, "__proto__"));
  });
});

describe("rich-text type", () => {
  it("normalizes as quill-delta's push and chop, and rejects what is not an op", () => {
    assert.deepEqual(normalizeRichOp([{ delete: 1 }, { insert: "x" }, { retain: 0 }, { retain: 3 }]).ops, [{ insert: "x" }, { delete: 1 }]);
    assert.deepEqual(normalizeRichOp({ ops: [{ insert: "a" }, { insert: "b", attributes: {} }] }).ops, [{ insert: "ab" }]);
    for (const bad of [[{ retain: -1 }], [{ retain: 1.5 }], [{ insert: "\ud800" }], [{ insert: {} }], [{ insert: { a: 1, b: 2 } }], [{ delete: 1, attributes: { bold: true } }], [{ retain: { image: 1 } }], [{ insert: "a", retain: 1 }], [7], "x"]) {
      assert.throws(() => normalizeRichOp(bad as never), InvalidOpError, JSON.stringify(bad));
    }
  });

  it("refuses an op longer than the document, or one that cuts a surrogate pair", () => {
    const doc = new Delta().insert("a😀b");
    assert.throws(() => applyRich(doc, new Delta().retain(5).delete(1)), InvalidOpError);
    assert.throws(() => applyRich(doc, new Delta().retain(2).insert("x")), /surrogate/);
    assert.throws(() => checkRichFits(new Delta().retain(1).retain(1, { bold: true }), doc), /surrogate/);
    assert.throws(() => checkRichFits(new Delta().retain(2).delete(1), doc), /surrogate/);
    checkRichFits(new Delta().retain(1).retain(2, { bold: true }).delete(1), doc);
    assert.deepEqual(applyRich(doc, new Delta().retain(3).insert("x")).ops, [{ insert: "a😀xb" }]);
  });

  it("gives `other` priority with left, as rich-text does (docs/OT.md section 16)", () => {
    const a = new Delta().insert("A");
    const b = new Delta().insert("B");
    assert.deepEqual(transformRich(a, b, "left").ops, [{ retain: 1 }, { insert: "A" }]);
    assert.deepEqual(transformRich(a, b, "right").ops, [{ insert: "A" }]);
  });

  it("agrees with rich-text 4.1.0 on apply, transform, compose, transformCursor and invert (3,000 random cases)", () => {
    const random = mulberry32(17);
    const seen = new Set<string>();
    // Every case distinct: repeats (small documents, empty ops) are drawn again.
    for (let drawn = 0; seen.size < 3000; drawn++) {
      assert.ok(drawn < 10_000, "the generator repeats itself");
      const doc = randomDocument(random);
      const a = randomOp(random, doc);
      const b = randomOp(random, doc);
      const key = JSON.stringify([doc.ops, a.ops, b.ops]);
      if (seen.has(key)) {
        continue;
      }
      seen.add(key);
      const context = JSON.stringify({ doc: doc.ops, a: a.ops, b: b.ops });
      assert.deepEqual(applyRich(doc, a).ops, oracle.apply(doc.ops, a.ops).ops, context);
      for (const side of ["left", "right"] as const) {
        assert.deepEqual(transformRich(a, b, side).ops, oracle.transform(a.ops, b.ops, side).ops, `${side} ${context}`);
      }
      const after = applyRich(doc, a);
      assert.deepEqual(composeRich(a, b.length() <= after.length() ? b : new Delta()).ops, oracle.compose(a.ops, b.length() <= after.length() ? b.ops : []).ops, context);
      const cursor = Math.floor(random() * (doc.length() + 1));
      for (const own of [true, false]) {
        assert.equal(transformRichCursor(cursor, a, own), oracle.transformCursor(cursor, oracle.deserialize(a.ops), own), context);
      }
      assert.deepEqual(invertRich(a, doc).ops, new OracleDelta(a.ops).invert(new OracleDelta(doc.ops)).ops, context);
      // Convergence under the sequencer's sides: a sequenced first, b transformed past it (docs/OT.md section 16).
      const left = applyRich(applyRich(doc, a), transformRich(b, a, "left"));
      const right = applyRich(applyRich(doc, b), transformRich(a, b, "right"));
      assert.deepEqual(left.ops, right.ops, context);
    }
  });
});

/** A seeded PRNG (mulberry32): distinct, reproducible cases. */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CHARS = ["a", "b", "c", " ", "\n", "é", "😀", "世"];
const FORMATS: [string, unknown][] = [
  ["bold", true],
  ["italic", true],
  ["color", "#e60000"],
  ["header", 1],
  ["header", 2],
  ["list", "bullet"],
  ["link", "https://example.com"],
];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function randomAttributes(random: () => number, allowNull: boolean): Record<string, unknown> | undefined {
  if (random() < 0.5) {
    return undefined;
  }
  const attributes: Record<string, unknown> = {};
  for (let i = 0, n = 1 + Math.floor(random() * 2); i < n; i++) {
    const [name, value] = pick(random, FORMATS);
    attributes[name] = allowNull && random() < 0.3 ? null : value;
  }
  return attributes;
}

function randomText(random: () => number): string {
  let text = "";
  for (let i = 0, n = 1 + Math.floor(random() * 4); i < n; i++) {
    text += pick(random, CHARS);
  }
  return text;
}

function randomDocument(random: () => number): Delta {
  const doc = new Delta();
  for (let i = 0, n = Math.floor(random() * 5); i < n; i++) {
    if (random() < 0.15) {
      doc.insert({ image: pick(random, ["a.png", "b.png"]) }, randomAttributes(random, false) ?? null);
    } else {
      doc.insert(randomText(random), randomAttributes(random, false) ?? null);
    }
  }
  return doc;
}

/** Character boundaries of the document (UTF-16 offsets that cut no surrogate pair). */
function boundaries(doc: Delta): number[] {
  const result = [0];
  let at = 0;
  for (const c of doc.ops) {
    if (typeof c.insert === "string") {
      for (const ch of c.insert) {
        at += ch.length;
        result.push(at);
      }
    } else {
      at += 1;
      result.push(at);
    }
  }
  return result;
}

/** A random op valid for `doc` (it cuts no surrogate pair). */
function randomOp(random: () => number, doc: Delta): Delta {
  const cuts = boundaries(doc);
  const op = new Delta();
  let index = 0; // into cuts
  while (random() < 0.75) {
    const roll = random();
    if (roll < 0.35) {
      if (random() < 0.2) {
        op.insert({ image: "c.png" }, randomAttributes(random, false) ?? null);
      } else {
        op.insert(randomText(random), randomAttributes(random, false) ?? null);
      }
      continue;
    }
    if (index >= cuts.length - 1) {
      break;
    }
    const next = Math.min(cuts.length - 1, index + 1 + Math.floor(random() * 3));
    const length = cuts[next]! - cuts[index]!;
    index = next;
    if (roll < 0.7) {
      op.retain(length, randomAttributes(random, true) ?? null);
    } else {
      op.delete(length);
    }
  }
  return op.chop();
}
