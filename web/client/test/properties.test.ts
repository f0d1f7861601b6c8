/**
 * Property tests over random interleavings of edits, message deliveries, socket drops and undo/redo, against the
 * in-memory reference server (sim.ts): replicas converge, every edit is applied exactly once, and undo restores the
 * user's intent without touching anyone else's work.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { UndoManager } from "../src/undo.js";
import { codePointLength, normalize, opToUtf16Changes, type TextOp } from "../src/text.js";
import { SimServer, type SimPeer } from "./sim.js";

/** Every inserted character is unique (BMP and astral alternately), so where each one ended up can be checked. */
class Chars {
  private next = 0;
  take(n: number): string {
    let s = "";
    for (let i = 0; i < n; i++, this.next++) {
      s += String.fromCodePoint(this.next % 2 === 0 ? 0x4e00 + this.next : 0x20000 + this.next);
    }
    return s;
  }
}

type Intent = [kind: number, amount: number, length: number];
type Command =
  | { t: "edit"; peer: number; intents: Intent[] }
  | { t: "serve"; peer: number; n: number }
  | { t: "deliver"; peer: number; n: number }
  | { t: "drop"; peer: number; reach: number }
  | { t: "undo" }
  | { t: "redo" };

const arbIntents = fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 6 }), fc.integer({ min: 1, max: 3 })), { minLength: 1, maxLength: 4 });

function arbCommands(peers: number, withDrops: boolean, withUndo: boolean): fc.Arbitrary<Command[]> {
  const peer = fc.integer({ min: 0, max: peers - 1 });
  const options: fc.Arbitrary<Command>[] = [
    fc.record({ t: fc.constant("edit" as const), peer, intents: arbIntents }),
    fc.record({ t: fc.constant("serve" as const), peer, n: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ t: fc.constant("deliver" as const), peer, n: fc.integer({ min: 1, max: 3 }) }),
  ];
  if (withDrops) {
    options.push(fc.record({ t: fc.constant("drop" as const), peer, reach: fc.integer({ min: 0, max: 2 }) }));
  }
  if (withUndo) {
    options.push(fc.constant({ t: "undo" as const }), fc.constant({ t: "undo" as const }), fc.constant({ t: "redo" as const }));
  }
  return fc.array(fc.oneof(...options), { minLength: 5, maxLength: 80, size: "max" });
}

/** The op of a peer's random edit on its current text; records what it inserts and deletes. */
function makeOp(text: string, intents: Intent[], chars: Chars, inserted: Set<string>, deleted: Set<string>): TextOp {
  const length = codePointLength(text);
  const cps = [...text];
  const op: TextOp = [];
  let position = 0;
  for (const [kind, amount, n] of intents) {
    const available = length - position;
    if (kind === 0 && available > 0) {
      const k = Math.min(amount, available);
      op.push(k);
      position += k;
    } else if (kind === 2 && available > 0) {
      const k = Math.min(Math.max(amount, 1), available);
      for (const c of cps.slice(position, position + k)) {
        deleted.add(c);
      }
      op.push({ d: k });
      position += k;
    } else {
      const s = chars.take(n);
      for (const c of s) {
        inserted.add(c);
      }
      op.push(s);
    }
  }
  return normalize(op);
}

async function run(sim: SimServer, commands: Command[], onEdit: (peer: SimPeer, op: TextOp) => void, undo?: UndoManager): Promise<void> {
  for (const command of commands) {
    switch (command.t) {
      case "edit": {
        const peer = sim.peers[command.peer]!;
        if (peer.client.state === "reconnecting") {
          await sim.reconnect(peer);
        }
        onEdit(peer, command.intents as unknown as TextOp);
        break;
      }
      case "serve":
        sim.serve(sim.peers[command.peer]!, command.n);
        break;
      case "deliver":
        sim.deliver(sim.peers[command.peer]!, command.n);
        break;
      case "drop": {
        const peer = sim.peers[command.peer]!;
        if (peer.client.state === "connected") {
          sim.drop(peer, command.reach);
        } else {
          await sim.reconnect(peer);
        }
        break;
      }
      case "undo":
        undo?.undo();
        break;
      case "redo":
        undo?.redo();
        break;
    }
  }
}

function assertConverged(sim: SimServer): void {
  for (const peer of sim.peers) {
    assert.ok(!peer.doc.hasPendingOps, `peer ${peer.index} still has pending ops`);
    assert.equal(peer.doc.text, sim.text, `peer ${peer.index} diverged`);
    assert.equal(peer.doc.version, sim.version);
  }
  // Dedupe: no (client id, seq) sequenced twice, seqs increasing per client.
  const last = new Map<string, number>();
  for (const s of sim.log) {
    assert.ok(s.seq > (last.get(s.clientId) ?? 0), `${s.clientId} seq ${s.seq} sequenced out of order or twice`);
    last.set(s.clientId, s.seq);
  }
}

describe("convergence under random interleavings and socket drops", () => {
  it("all replicas converge and every edit is applied exactly once", async () => {
    await fc.assert(
      fc.asyncProperty(arbCommands(3, true, false), async (commands) => {
        const sim = new SimServer("d", "abc");
        for (let i = 0; i < 3; i++) {
          await sim.addClient();
        }
        const chars = new Chars();
        const inserted = new Set<string>();
        const deleted = new Set<string>(); // chars removed by someone; absent at the end
        await run(sim, commands, (peer, intents) => {
          peer.doc.submitOp(makeOp(peer.doc.text, intents as unknown as Intent[], chars, inserted, deleted));
        });
        await sim.settle();
        assertConverged(sim);
        const final = [...sim.text];
        assert.equal(new Set(final).size, final.length, "a character appears twice: an edit was applied twice");
        for (const c of [..."abc", ...inserted]) {
          assert.equal(final.includes(c), !deleted.has(c), `${c} should be ${deleted.has(c) ? "absent" : "present"}`);
        }
        for (const peer of sim.peers) {
          const own = sim.log.filter((s) => s.clientId === peer.clientId);
          assert.deepEqual([...peer.acked.entries()].sort((a, b) => a[0] - b[0]), own.map((s) => [s.seq, s.version]), "every sequenced op acknowledged once, at its version");
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe("undo of the user's own edits", () => {
  it("after any interleaving, undoing everything removes exactly the user's work, and replicas converge", async () => {
    await fc.assert(
      fc.asyncProperty(arbCommands(3, true, true), async (commands) => {
        const initial = "abcdefgh";
        const sim = new SimServer("d", initial);
        for (let i = 0; i < 3; i++) {
          await sim.addClient();
        }
        const user = sim.peers[0]!;
        const undo = new UndoManager(user.doc, { captureTimeoutMs: 0 });
        const chars = new Chars();
        const userInserted = new Set<string>();
        const userDeleted = new Set<string>();
        const othersInserted = new Set<string>();
        const othersDeleted = new Set<string>();
        await run(
          sim,
          commands,
          (peer, intents) => {
            const mine = peer === user;
            peer.doc.submitOp(makeOp(peer.doc.text, intents as unknown as Intent[], chars, mine ? userInserted : othersInserted, mine ? userDeleted : othersDeleted));
          },
          undo,
        );
        while (undo.undo()) {
          // Undo everything the user did, wherever it is now.
        }
        await sim.settle();
        assertConverged(sim);
        const final = [...sim.text];
        assert.equal(new Set(final).size, final.length, "a character appears twice");
        for (const c of userInserted) {
          assert.ok(!final.includes(c), `the user's ${c} survived undo`);
        }
        for (const c of [...initial, ...othersInserted]) {
          if (userInserted.has(c)) {
            continue;
          }
          if (!othersDeleted.has(c)) {
            assert.ok(final.includes(c), `${c} (not the user's, deleted by nobody else) is missing after undo`);
          } else if (!userDeleted.has(c)) {
            assert.ok(!final.includes(c), `${c}, deleted by someone else only, came back`);
          }
          // Deleted by both concurrently: either outcome keeps the intent of one of them.
        }
        undo.dispose();
      }),
      { numRuns: 150 },
    );
  });

  it("redo puts the undone edit back where it now belongs", async () => {
    const sim = new SimServer("d", "hello");
    const user = await sim.addClient();
    const other = await sim.addClient();
    const undo = new UndoManager(user.doc, { captureTimeoutMs: 0 });
    user.doc.insert(5, " world");
    await sim.settle();
    other.doc.insert(0, ">> ");
    await sim.settle();
    assert.ok(undo.undo());
    await sim.settle();
    assert.equal(other.doc.text, ">> hello");
    assert.ok(undo.redo());
    await sim.settle();
    assert.equal(other.doc.text, ">> hello world");
    assert.ok(!undo.canRedo);
    assert.ok(undo.canUndo);
  });

  it("merges edits closer than captureTimeoutMs into one step; stopCapturing starts a new one", async () => {
    const sim = new SimServer("d", "");
    const user = await sim.addClient();
    let now = 0;
    const undo = new UndoManager(user.doc, { captureTimeoutMs: 500, now: () => now });
    user.doc.insert(0, "a");
    now = 100;
    user.doc.insert(1, "b");
    now = 1000;
    user.doc.insert(2, "c");
    undo.stopCapturing();
    user.doc.insert(3, "d");
    undo.undo();
    assert.equal(user.doc.text, "abc");
    undo.undo();
    assert.equal(user.doc.text, "ab");
    undo.undo();
    assert.equal(user.doc.text, "");
    assert.ok(!undo.undo());
  });

  it("utf16Changes of a local change event describe the edit for an editor", async () => {
    const sim = new SimServer("d", "😀x");
    const user = await sim.addClient();
    const seen: unknown[] = [];
    user.doc.on("localChange", (e) => seen.push(e.utf16Changes));
    user.doc.insert(1, "y");
    assert.deepEqual(seen, [opToUtf16Changes("😀x", [1, "y"])]);
    assert.deepEqual(seen, [[{ from: 2, to: 2, insert: "y" }]]);
  });
});
