import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  apply,
  codePointLength,
  codePointToUtf16,
  compose,
  diff,
  InvalidOpError,
  invert,
  normalize,
  opFromUtf16Changes,
  opToUtf16Changes,
  transform,
  transformCursor,
  utf16ToCodePoint,
  type TextOp,
} from "../src/text.js";
import { arbDocAndOp, arbDocAndTwoOps, arbText } from "./arbitraries.js";

describe("text type", () => {
  it("counts code points, not UTF-16 units", () => {
    assert.equal(codePointLength("a😀b"), 3);
    assert.equal(apply("a😀b", [1, { d: 1 }, "é"]), "aéb");
  });

  it("converts between code points and UTF-16 offsets", () => {
    const text = "x😀y👻z";
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((p) => codePointToUtf16(text, p)), [0, 1, 3, 4, 6, 7]);
    assert.deepEqual([0, 1, 3, 4, 6, 7].map((u) => utf16ToCodePoint(text, u)), [0, 1, 2, 3, 4, 5]);
  });

  it("refuses an op that does not fit", () => {
    assert.throws(() => apply("ab", [3, "x"]), InvalidOpError);
    assert.throws(() => normalize(["\ud800"]), InvalidOpError);
    assert.throws(() => normalize([-1]), InvalidOpError);
  });

  it("moves cursors as docs/OT.md section 7 says (own inserts push, others' do not)", () => {
    assert.equal(transformCursor(2, [2, "xy"], false), 2);
    assert.equal(transformCursor(2, [2, "xy"], true), 4);
    assert.equal(transformCursor(3, [1, { d: 4 }], false), 1);
    assert.equal(transformCursor(5, [1, "😀"], false), 6);
  });

  it("inverts: apply(apply(d, op), invert(op, d)) == d", () => {
    fc.assert(
      fc.property(arbDocAndOp, ([doc, op]) => {
        assert.equal(apply(apply(doc, op), invert(op, doc)), doc);
      }),
    );
  });

  it("diff turns one text into the other without splitting surrogate pairs", () => {
    fc.assert(
      fc.property(arbText, arbText, (a, b) => {
        assert.equal(apply(a, diff(a, b)), b);
      }),
    );
    assert.deepEqual(diff("a😀b", "a😃b"), [1, { d: 1 }, "😃"]);
  });

  it("converges (TP1): left and right transforms agree", () => {
    fc.assert(
      fc.property(arbDocAndTwoOps, ([doc, a, b]) => {
        assert.equal(apply(apply(doc, a), transform(b, a, "left")), apply(apply(doc, b), transform(a, b, "right")));
      }),
    );
  });

  it("utf16 changes and ops describe the same edit", () => {
    fc.assert(
      fc.property(arbDocAndOp, ([doc, op]) => {
        const changes = opToUtf16Changes(doc, op);
        let text = doc;
        for (const change of [...changes].reverse()) {
          text = text.slice(0, change.from) + change.insert + text.slice(change.to);
        }
        assert.equal(text, apply(doc, op));
        assert.equal(apply(doc, opFromUtf16Changes(doc, changes)), apply(doc, op));
      }),
    );
  });

  it("composes: apply(apply(d, a), b) == apply(d, compose(a, b))", () => {
    const doc = "hello world";
    const a: TextOp = [5, { d: 6 }];
    const b: TextOp = [5, "!"];
    assert.equal(apply(doc, compose(a, b)), apply(apply(doc, a), b));
    assert.deepEqual(transform(["x"], ["y"], "left"), ["x"]);
    assert.deepEqual(transform(["x"], ["y"], "right"), [1, "x"]);
  });
});
