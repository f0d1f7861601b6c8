/**
 * The platform's online/offline events (a browser's window): a connected client proves its connection at once, a
 * reconnecting one skips the rest of its backoff when the network is back.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { connect, flush, welcome } from "./harness.js";

function network(): EventTarget & { listeners: () => number } {
  const target = new EventTarget();
  let count = 0;
  const add = target.addEventListener.bind(target);
  const remove = target.removeEventListener.bind(target);
  return Object.assign(target, {
    addEventListener: (type: string, listener: EventListenerOrEventListenerObject | null) => (count++, add(type, listener)),
    removeEventListener: (type: string, listener: EventListenerOrEventListenerObject | null) => (count--, remove(type, listener)),
    listeners: () => count,
  });
}

describe("network events", () => {
  it("offline while connected: a Ping at once; no answer within the probe window ends the connection and reconnects", async () => {
    const net = network();
    const h = await connect({ networkEvents: net, pingIntervalMs: 15_000 });
    const reasons: string[] = [];
    h.client.on("disconnected", (e) => reasons.push(e.reason));
    net.dispatchEvent(new Event("offline"));
    h.conn.take("ping");
    h.scheduler.advance(2999);
    assert.equal(h.client.state, "connected");
    h.scheduler.advance(1);
    assert.equal(h.client.state, "reconnecting");
    assert.deepEqual(reasons, ["keep-alive-timeout"]);
    assert.deepEqual(h.conn.closedByClient, { code: 1000, reason: "network changed" });
  });

  it("a network change the connection survived: the answered Ping keeps it", async () => {
    const net = network();
    const h = await connect({ networkEvents: net });
    net.dispatchEvent(new Event("online"));
    const ping = h.conn.take("ping");
    h.scheduler.advance(1000);
    h.conn.receive({ case: "pong", value: { nonce: ping.value.nonce } });
    h.scheduler.advance(10_000);
    assert.equal(h.client.state, "connected");
  });

  it("online while reconnecting: the next attempt starts now instead of after the backoff", async () => {
    const net = network();
    const h = await connect({ networkEvents: net, reconnect: { minDelayMs: 5000, maxDelayMs: 60_000 } });
    h.conn.end(1006);
    assert.equal(h.client.state, "reconnecting");
    const before = h.network.connections.length;
    h.scheduler.advance(100);
    await flush();
    assert.equal(h.network.connections.length, before, "attempted before its backoff");
    net.dispatchEvent(new Event("online"));
    h.scheduler.advance(0);
    await flush();
    assert.equal(h.network.connections.length, before + 1);
    h.network.last.open();
    h.network.last.take("hello");
    welcome(h.network.last, "c1", true);
    assert.equal(h.client.state, "connected");
  });

  it("stops listening when the client closes", async () => {
    const net = network();
    const h = await connect({ networkEvents: net });
    assert.equal(net.listeners(), 2);
    await Promise.race([h.client.close(), new Promise((r) => setTimeout(r, 50))]);
    assert.equal(net.listeners(), 0);
  });
});

describe("remote presence and the connection", () => {
  it("the others' selections are withdrawn when the connection is lost, and come back from the server's broadcasts", async () => {
    const { open } = await import("./harness.js");
    const h = await connect();
    const doc = await open(h, "d", "hello", 1);
    const events: string[] = [];
    doc.on("presence", (e) => events.push(`${e.clientId}:${e.presence === null ? "gone" : e.presence.head}`));
    h.conn.receive({ case: "presence", value: { docId: "d", clientId: "bob", version: 1n, selection: { anchor: 2n, head: 3n }, userData: new Uint8Array() } });
    assert.equal(doc.presences.size, 1);
    h.conn.end(1006);
    assert.equal(doc.presences.size, 0);
    assert.deepEqual(events, ["bob:3", "bob:gone"]);
    h.scheduler.runNext();
    await flush();
    h.network.last.open();
    h.network.last.take("hello");
    welcome(h.network.last, "c1", true);
    const subscribe = h.network.last.take("subscribe");
    h.network.last.receive({ case: "subscribed", value: { docId: "d", fromVersion: 1n, currentVersion: 1n } }, subscribe.requestId);
    h.network.last.receive({ case: "presence", value: { docId: "d", clientId: "bob", version: 1n, selection: { anchor: 4n, head: 4n }, userData: new Uint8Array() } });
    assert.equal(doc.presences.get("bob")?.head, 4);
  });
});
