/**
 * README's "Use it from a browser" example is examples/textarea.ts verbatim, and it works: two textareas (fakes with
 * the DOM's value/selection behaviour) bound to two replicas edit together, carets stay put under remote edits,
 * undo goes through the binding.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { bindTextarea } from "../examples/textarea.js";
import { UndoManager } from "../src/undo.js";
import { repoRoot } from "./paths.js";
import { SimServer } from "./sim.js";

/** The parts of HTMLTextAreaElement the binding uses, with the DOM's semantics for value and selection. */
class FakeTextarea {
  private text = "";
  selectionStart = 0;
  selectionEnd = 0;
  private readonly listeners = new Map<string, Set<() => void>>();

  get value(): string {
    return this.text;
  }

  set value(v: string) {
    // Assigning the value puts the caret at the end, as browsers do.
    this.text = v;
    this.selectionStart = this.selectionEnd = v.length;
  }

  setSelectionRange(start: number, end: number): void {
    this.selectionStart = start;
    this.selectionEnd = end;
  }

  addEventListener(type: string, listener: () => void): void {
    (this.listeners.get(type) ?? this.listeners.set(type, new Set()).get(type)!).add(listener);
  }

  removeEventListener(type: string, listener: () => void): void {
    this.listeners.get(type)?.delete(listener);
  }

  /** The user types `text` at the caret (UTF-16 offsets), as the browser would, then fires input. */
  type(text: string): void {
    const at = this.selectionStart;
    this.text = this.text.slice(0, at) + text + this.text.slice(this.selectionEnd);
    this.selectionStart = this.selectionEnd = at + text.length;
    for (const listener of this.listeners.get("input") ?? []) {
      listener();
    }
  }
}

describe("README: Use it from a browser", () => {
  it("shows examples/textarea.ts verbatim", () => {
    const readme = readFileSync(join(repoRoot(), "README.md"), "utf8");
    const example = readFileSync(join(repoRoot(), "web", "client", "examples", "textarea.ts"), "utf8");
    assert.ok(readme.includes("```ts\n" + example + "```"), "README.md's textarea example differs from web/client/examples/textarea.ts");
  });

  it("binds two textareas through the server: typing shows on the other side, carets stay, undo shows", async () => {
    const sim = new SimServer("d", "hello");
    const a = await sim.addClient();
    const b = await sim.addClient();
    const areaA = new FakeTextarea();
    const areaB = new FakeTextarea();
    const unbindA = bindTextarea(a.doc as never, areaA as never, { name: "Ann", color: "#c33" });
    bindTextarea(b.doc as never, areaB as never, { name: "Bob", color: "#33c" });
    assert.equal(areaA.value, "hello");

    areaB.setSelectionRange(5, 5); // Bob's caret at the end
    areaA.setSelectionRange(0, 0);
    areaA.type("😀 ");
    await sim.settle();
    assert.equal(areaB.value, "😀 hello");
    assert.deepEqual([areaB.selectionStart, areaB.selectionEnd], [8, 8], "Bob's caret moved past Ann's insert, not to the end");
    const presence = b.doc.presences.get(a.clientId);
    assert.deepEqual([presence?.anchor, presence?.head], [2, 2]);
    assert.equal(JSON.parse(new TextDecoder().decode(presence!.userData)).name, "Ann");

    const undo = new UndoManager(a.doc);
    areaA.type("!");
    assert.ok(undo.undo());
    assert.equal(areaA.value, "😀 hello");
    await sim.settle();
    assert.equal(areaB.value, "😀 hello");
    unbindA();
    areaA.type("x");
    assert.equal(a.doc.text, "😀 hello", "unbound: typing no longer edits the document");
  });
});
