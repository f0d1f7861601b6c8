// Differential test cases for Collab's rich-text OT type, answered by the oracle: ShareDB's `rich-text` 4.1.0 type on
// `quill-delta` 4.2.2 (package-lock.json pins both).
//
//   node generate.mjs --seed <uint32> --count <n> [--edge edge-cases.json]
//
// Writes one JSON object per line to stdout: first the hand-written edge cases (inputs from edge-cases.json), then
// <n> random cases, all distinct, then a summary line {"summary": {...}}. Each case holds its inputs (a document, ops
// a and b made against it, c made against apply(doc, a), cursor positions) and the oracle's answers: apply, transform
// of each op against the other on both sides, compose, transformCursor for the owner and for others, invert. Random
// numbers come from mulberry32 (a 32-bit generator with a full period), seeded from the command line, so a failing
// seed reproduces exactly. Inputs never cut a surrogate pair: Collab rejects such ops, the oracle would split the pair.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Delta = require('quill-delta');
const richText = require('rich-text').type;

function argument(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const seed = Number(argument('--seed', '1')) >>> 0;
const count = Number(argument('--count', '20000'));
const edgeFile = argument('--edge', null);

// mulberry32 (Tommy Ettinger): 32-bit state, every state visited once per period of 2^32.
function mulberry32(a) {
  return function () {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = mulberry32(seed);
const int = (n) => Math.floor(random() * n); // 0 .. n-1
const pick = (items) => items[int(items.length)];
const chance = (p) => random() < p;

// Text pieces: ASCII, a newline (Quill's line formats live on it), Latin-1, CJK, and astral characters (two UTF-16
// units each) so that lengths in UTF-16 units and surrogate pairs are exercised.
const pieces = ['a', 'b', 'c', 'xy', ' ', '\n', 'é', '中', '😀', '👻', 'q😀'];
const insertFormats = [
  { bold: true }, { italic: true }, { bold: true, italic: true }, { color: '#f00' }, { color: '#0f0' },
  { header: 1 }, { header: 2 }, { link: 'https://example.test/a?b=1' }, { size: 1.5 }, { bold: false },
  { list: 'ordered' }, { bold: null }, { comment: { id: 'c1', at: [1, 2] } }, { script: 'sub', color: '#f00' },
];
const retainFormats = [
  { bold: true }, { bold: null }, { italic: true }, { italic: null }, { color: '#00f' }, { color: null },
  { bold: true, color: '#f00' }, { header: 2 }, { header: null }, { link: 'https://example.test/b' },
  { size: -3 }, { bold: false }, { comment: { id: 'c1', at: [1, 2] } }, { comment: null }, { bold: null, italic: true },
];
const embeds = [
  { image: 'https://example.test/cat.png' }, { video: 'https://example.test/v.mp4' }, { formula: 'e=mc^2' },
  { mention: { id: 7, name: 'Ada' } }, { image: 'data:image/png;base64,iVBORw0KGgo=' },
];

function randomInsert(delta) {
  const attributes = chance(0.45) ? pick(insertFormats) : undefined;
  if (chance(0.15)) {
    delta.insert(pick(embeds), attributes);
  } else {
    let text = '';
    for (let n = 1 + int(3); n > 0; n--) text += pick(pieces);
    delta.insert(text, attributes);
  }
}

function randomDocument() {
  const delta = new Delta();
  const segments = chance(0.1) ? 0 : chance(0.2) ? 8 + int(16) : 1 + int(6);
  for (let i = 0; i < segments; i++) randomInsert(delta);
  return delta;
}

// The document's UTF-16 units, an embed as one placeholder, to find surrogate pairs.
function unitsOf(doc) {
  return doc.ops.map((op) => (typeof op.insert === 'string' ? op.insert : '\u0000')).join('');
}

function cutsPair(units, position) {
  if (position <= 0 || position >= units.length) return false;
  const high = units.charCodeAt(position - 1);
  const low = units.charCodeAt(position);
  return high >= 0xd800 && high <= 0xdbff && low >= 0xdc00 && low <= 0xdfff;
}

// An op against a document of `units`: retains (plain or formatting), inserts, deletes at random places, never cutting
// a surrogate pair; built with quill-delta's builders (normal form) and chopped like every result of the type.
function randomOp(units) {
  for (;;) {
    const delta = new Delta();
    const boundaries = [];
    let position = 0;
    const steps = chance(0.05) ? 0 : 1 + int(5);
    for (let i = 0; i < steps; i++) {
      const left = units.length - position;
      const kind = int(10);
      if (kind < 3 && left > 0) {
        const n = 1 + int(Math.min(left, 6));
        if (chance(0.5)) delta.retain(n, pick(retainFormats));
        else delta.retain(n);
        position += n;
        boundaries.push(position);
      } else if (kind < 7) {
        randomInsert(delta);
      } else if (left > 0) {
        const n = 1 + int(Math.min(left, 4));
        delta.delete(n);
        position += n;
        boundaries.push(position);
      }
    }
    if (!boundaries.some((p) => cutsPair(units, p))) return delta.chop();
  }
}

function cursorsFor(units) {
  const result = [];
  for (let n = int(4); n > 0; n--) {
    const p = int(units.length + 1);
    if (!cutsPair(units, p)) result.push(p);
  }
  return result;
}

function answer(input) {
  const doc = new Delta(input.doc);
  const a = new Delta(input.a);
  const b = new Delta(input.b);
  const c = new Delta(input.c);
  const afterA = richText.apply(doc, a);
  return {
    ...input,
    applyA: afterA.ops,
    applyB: richText.apply(doc, b).ops,
    applyAC: richText.apply(afterA, c).ops,
    aLeft: richText.transform(a, b, 'left').ops,
    aRight: richText.transform(a, b, 'right').ops,
    bLeft: richText.transform(b, a, 'left').ops,
    bRight: richText.transform(b, a, 'right').ops,
    composeAC: richText.compose(a, c).ops,
    invertA: a.invert(doc).ops,
    invertB: b.invert(doc).ops,
    cursorsA: input.cursors.map((p) => [richText.transformCursor(p, a, true), richText.transformCursor(p, a, false)]),
  };
}

const out = [];
let written = 0;
function emit(object) {
  out.push(JSON.stringify(object));
  if (out.length >= 512) flush();
}
function flush() {
  if (out.length > 0) {
    process.stdout.write(out.join('\n') + '\n');
    written += out.length;
    out.length = 0;
  }
}

// quill-delta's normal form of raw ops: push each (merging, inserts before deletes), then chop a trailing retain.
function normalize(ops) {
  return ops.reduce((delta, op) => delta.push(op), new Delta()).chop().ops;
}

// Hand-written cases are given as raw JSON, possibly not normalized: the oracle's normal form of each input is emitted
// (`normal`) for the engine's parser to match, and the operations are answered on the normalized inputs.
let edges = 0;
if (edgeFile) {
  for (const edge of JSON.parse(readFileSync(edgeFile, 'utf8'))) {
    const raw = { doc: edge.doc, a: edge.a, b: edge.b ?? [], c: edge.c ?? [] };
    const normal = { doc: normalize(raw.doc), a: normalize(raw.a), b: normalize(raw.b), c: normalize(raw.c) };
    emit({ edge: true, name: edge.name, raw, normal, ...answer({ ...normal, cursors: edge.cursors ?? [] }) });
    edges++;
  }
}

const seen = new Set();
let attempts = 0;
let duplicates = 0;
while (seen.size < count) {
  attempts++;
  if (attempts > count * 20) throw new Error(`only ${seen.size} distinct cases after ${attempts} attempts`);
  const doc = randomDocument();
  const units = unitsOf(doc);
  const a = randomOp(units);
  const b = randomOp(units);
  const c = randomOp(unitsOf(richText.apply(doc, a)));
  const input = { doc: doc.ops, a: a.ops, b: b.ops, c: c.ops, cursors: cursorsFor(units) };
  const key = JSON.stringify(input);
  if (seen.has(key)) {
    duplicates++;
    continue;
  }
  seen.add(key);
  emit(answer(input));
}
flush();
process.stdout.write(JSON.stringify({ summary: { seed, cases: seen.size, edges, attempts, duplicates, lines: written } }) + '\n');
