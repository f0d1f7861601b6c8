/** fast-check generators over a mix of scripts, so that UTF-16 offsets and code points differ. */
import fc from "fast-check";
import { codePointLength, normalize, type TextOp } from "../src/text.js";

/** One code point: mostly ASCII, some combining marks, CJK and astral emoji (surrogate pairs in UTF-16). */
export const arbChar: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0x61, max: 0x7a }).map((c) => String.fromCodePoint(c)) },
  { weight: 1, arbitrary: fc.constantFrom(" ", "\n") },
  { weight: 1, arbitrary: fc.integer({ min: 0x300, max: 0x36f }).map((c) => String.fromCodePoint(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0x4e00, max: 0x9fff }).map((c) => String.fromCodePoint(c)) },
  { weight: 2, arbitrary: fc.integer({ min: 0x1f600, max: 0x1f64f }).map((c) => String.fromCodePoint(c)) },
);

export const arbText: fc.Arbitrary<string> = fc.array(arbChar, { maxLength: 30 }).map((chars) => chars.join(""));

/** An op valid for a document of `length` code points. */
export function arbOpFor(length: number): fc.Arbitrary<TextOp> {
  const intent = fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 8 }), fc.array(arbChar, { minLength: 1, maxLength: 5 }));
  return fc.array(intent, { maxLength: 6 }).map((intents) => {
    const op: TextOp = [];
    let position = 0;
    for (const [kind, amount, chars] of intents) {
      const available = length - position;
      if (kind === 0 && available > 0) {
        const n = Math.min(amount, available);
        op.push(n);
        position += n;
      } else if (kind === 2 && available > 0) {
        const n = Math.min(Math.max(amount, 1), available);
        op.push({ d: n });
        position += n;
      } else {
        op.push(chars.join(""));
      }
    }
    return normalize(op);
  });
}

export const arbDocAndOp: fc.Arbitrary<[string, TextOp]> = arbText.chain((doc) => arbOpFor(codePointLength(doc)).map((op) => [doc, op] as [string, TextOp]));

export const arbDocAndTwoOps: fc.Arbitrary<[string, TextOp, TextOp]> = arbText.chain((doc) =>
  fc.tuple(fc.constant(doc), arbOpFor(codePointLength(doc)), arbOpFor(codePointLength(doc))),
);
