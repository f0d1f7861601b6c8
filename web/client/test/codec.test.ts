import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { decodeTextOp, encodeTextOp, MalformedOpError } from "../src/codec.js";
import type { TextOp } from "../src/text.js";
import { repoRoot } from "./paths.js";

interface Vectors {
  valid: { op: TextOp; hex: string }[];
  malformed: { hex: string; reason: string }[];
}

const vectors = JSON.parse(readFileSync(join(repoRoot(), "tests", "vectors", "text-op-encoding.json"), "utf8")) as Vectors;
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "hex"));

describe("text op codec against the C# codec's vectors (tests/vectors/text-op-encoding.json)", () => {
  it("has vectors to replay", () => {
    assert.ok(vectors.valid.length >= 50);
    assert.ok(vectors.malformed.length >= 20);
  });

  it("encodes every op to the C# bytes", () => {
    for (const vector of vectors.valid) {
      assert.equal(hex(encodeTextOp(vector.op)), vector.hex, JSON.stringify(vector.op));
    }
  });

  it("decodes every encoding back to the op", () => {
    for (const vector of vectors.valid) {
      assert.deepEqual(decodeTextOp(bytes(vector.hex)), vector.op, vector.hex);
    }
  });

  it("rejects every malformed input the C# decoder rejects", () => {
    for (const vector of vectors.malformed) {
      assert.throws(() => decodeTextOp(bytes(vector.hex)), MalformedOpError, `${vector.hex} (${vector.reason}) was accepted`);
    }
  });
});

describe("text op codec", () => {
  it("normalises before encoding, so every spelling of one op has one encoding", () => {
    assert.equal(hex(encodeTextOp([1, 2, "h", "i", { d: 1 }, { d: "é" }, 7])), "0c0968690a");
  });

  it("counts inserts in UTF-8 bytes and the rest in code points", () => {
    // 😀 is 2 UTF-16 units, 1 code point, 4 UTF-8 bytes.
    assert.equal(hex(encodeTextOp([1, "😀", { d: 1 }])), "0411f09f988006");
  });

  it("refuses ops longer than 2^31-1 code points", () => {
    assert.throws(() => encodeTextOp([0x7fffffff, "x", { d: 1 }]), MalformedOpError);
  });
});
