/**
 * The connection state machine (docs/PROTOCOL.md section 4) against a scripted server: handshake, token delivery,
 * backoff, close codes, Redirect, keep-alive, client id storage.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CollabClient } from "../src/client.js";
import { CollabConnectionError, CollabServerError, DocumentClosedError } from "../src/errors.js";
import { CloseCode, ErrorCode } from "../src/protocol.js";
import { MemoryStorage, SEQ_BLOCK } from "../src/storage.js";
import { connect, FakeNetwork, flush, ManualScheduler, open, reconnect, URL, welcome } from "./harness.js";

describe("handshake", () => {
  it("sends Hello{version 1, no id} first, offers collab.v1 and the token as bearer.<token>, and keeps the assigned id", async () => {
    const network = new FakeNetwork();
    const storage = new MemoryStorage();
    const requests: string[] = [];
    const connecting = CollabClient.connect({
      url: URL,
      transport: network.factory,
      scheduler: new ManualScheduler(),
      storage,
      clientName: "test/1",
      getToken: async (request) => {
        requests.push(request.reason);
        return "tok.en-1";
      },
    });
    await flush();
    const conn = network.last;
    assert.equal(conn.url, URL);
    assert.deepEqual(conn.protocols, ["collab.v1", "bearer.tok.en-1"]);
    conn.open();
    const hello = conn.take("hello");
    assert.equal(hello.value.protocolVersion, 1);
    assert.equal(hello.value.clientId, "");
    assert.equal(hello.value.clientName, "test/1");
    conn.expectNone();
    welcome(conn, "assigned-1");
    const client = await connecting;
    assert.equal(client.state, "connected");
    assert.equal(client.clientId, "assigned-1");
    assert.deepEqual(requests, ["connect"]);
    // Kept for the next page load, never with the token.
    const stored = storage.getItem(`collab.client:${URL}`)!;
    assert.deepEqual(JSON.parse(stored), { id: "assigned-1", seq: 0 });
    assert.ok(!stored.includes("tok"));
  });

  it("resumes the stored client id and continues seqs in a fresh block above the stored last seq", async () => {
    const storage = new MemoryStorage();
    storage.setItem(`collab.client:${URL}`, JSON.stringify({ id: "kept", seq: 41 }));
    const network = new FakeNetwork();
    const connecting = CollabClient.connect({ url: URL, transport: network.factory, scheduler: new ManualScheduler(), storage });
    await flush();
    network.last.open();
    assert.equal(network.last.take("hello").value.clientId, "kept");
    welcome(network.last, "kept", true);
    const client = await connecting;
    const h = { client, network, scheduler: new ManualScheduler(), storage, get conn() { return network.last; } };
    const doc = await open(h, "d");
    doc.insert(0, "x");
    assert.equal(h.conn.take("submit").value.clientSeq, BigInt(41 + SEQ_BLOCK + 1));
    assert.deepEqual(JSON.parse(storage.getItem(`collab.client:${URL}`)!), { id: "kept", seq: 41 + SEQ_BLOCK + 1 });
  });

  it("offers no bearer subprotocol without a token (cookie authentication)", async () => {
    const h = await connect({ getToken: () => null });
    assert.deepEqual(h.conn.protocols, ["collab.v1"]);
  });

  it("rejects the first connect with the HTTP status of a refused upgrade, and closes", async () => {
    const network = new FakeNetwork();
    const connecting = CollabClient.connect({ url: URL, transport: network.factory, scheduler: new ManualScheduler(), storage: null });
    await flush();
    network.last.end(1006, "", 401);
    const error = await connecting.then(() => null, (e: unknown) => e);
    assert.ok(error instanceof CollabConnectionError);
    assert.equal(error.httpStatus, 401);
    assert.equal(network.connections.length, 1);
  });

  it("rejects the first connect with the server's error to Hello", async () => {
    const network = new FakeNetwork();
    const connecting = CollabClient.connect({ url: URL, transport: network.factory, scheduler: new ManualScheduler(), storage: null });
    await flush();
    network.last.open();
    network.last.receive({ case: "error", value: { code: ErrorCode.PROTOCOL_VERSION, message: "v2 only", retryable: false } });
    const error = await connecting.then(() => null, (e: unknown) => e);
    assert.ok(error instanceof CollabServerError);
    assert.equal(error.code, ErrorCode.PROTOCOL_VERSION);
  });

  it("gives the first attempt connectTimeoutMs to get Welcome", async () => {
    const network = new FakeNetwork();
    const scheduler = new ManualScheduler();
    const connecting = CollabClient.connect({ url: URL, transport: network.factory, scheduler, storage: null, connectTimeoutMs: 3000 });
    await flush();
    network.last.open();
    scheduler.advance(2999);
    assert.equal(network.last.closedByClient, null);
    scheduler.advance(1);
    const error = await connecting.then(() => null, (e: unknown) => e);
    assert.ok(error instanceof CollabConnectionError);
    assert.match(error.message, /No Welcome/);
    assert.notEqual(network.last.closedByClient, null);
  });

  it("follows a Redirect during the handshake after retry_after_ms plus jitter, at most maxRedirects in a row", async () => {
    const network = new FakeNetwork();
    const scheduler = new ManualScheduler();
    scheduler.randoms = [0, 0];
    const connecting = CollabClient.connect({ url: URL, transport: network.factory, scheduler, storage: null, maxRedirects: 1 });
    await flush();
    network.last.open();
    network.last.take("hello");
    network.last.receive({ case: "redirect", value: { url: "ws://node-2.test/ws", retryAfterMs: 100, reason: "draining" } });
    assert.equal(network.last.closedByClient?.code, 1000);
    scheduler.advance(99);
    assert.equal(network.connections.length, 1);
    scheduler.advance(1);
    await flush();
    assert.equal(network.connections.length, 2);
    assert.equal(network.last.url, "ws://node-2.test/ws");
    network.last.open();
    network.last.take("hello");
    network.last.receive({ case: "redirect", value: { url: "/elsewhere", retryAfterMs: 0, reason: "" } });
    const error = await connecting.then(() => null, (e: unknown) => e);
    assert.ok(error instanceof CollabConnectionError);
    assert.match(error.message, /redirects in a row/);
  });
});

describe("reconnect", () => {
  it("backs off exponentially with full jitter: attempt n waits in [min, min(max, min*2^n)]", async () => {
    const h = await connect({ reconnect: { minDelayMs: 100, maxDelayMs: 1000 } });
    const delays: number[] = [];
    h.client.on("reconnecting", (e) => delays.push(e.delayMs));
    h.scheduler.randoms = [0.5, 0.5, 0.5, 0.5, 0.999];
    h.conn.end(1001, "going away");
    for (let attempt = 1; attempt <= 5; attempt++) {
      h.scheduler.runNext();
      await flush();
      h.network.last.end(1006);
    }
    // [100, 200] at 0.5 = 150; [100, 400] = 250; [100, 800] = 450; [100, 1000] = 550 (capped); ~1000 at 0.999.
    assert.deepEqual(delays.slice(0, 4), [150, 250, 450, 550]);
    assert.ok(delays[4]! > 990 && delays[4]! <= 1000);
    assert.equal(h.client.state, "reconnecting");
  });

  it("closes after maxAttempts failed attempts", async () => {
    const h = await connect({ reconnect: { maxAttempts: 2 } });
    const disconnects: { reason: string; willReconnect: boolean }[] = [];
    h.client.on("disconnected", (e) => disconnects.push({ reason: e.reason, willReconnect: e.willReconnect }));
    h.conn.end(1011, "boom");
    h.scheduler.runNext();
    await flush();
    h.network.last.end(1006);
    h.scheduler.runNext();
    await flush();
    h.network.last.end(1006);
    assert.equal(h.client.state, "closed");
    assert.deepEqual(disconnects, [
      { reason: "server-closed", willReconnect: true },
      { reason: "retries-exhausted", willReconnect: false },
    ]);
    assert.equal(h.network.connections.length, 3);
  });

  it("reports every state change: connected, reconnecting, connected, closed", async () => {
    const h = await connect();
    const events: string[] = [];
    h.client.on("state", (s) => events.push(s));
    h.client.on("disconnected", (e) => events.push(`disconnected:${e.reason}:${e.willReconnect}`));
    h.conn.end(1006);
    await reconnect(h);
    await h.client.close();
    assert.deepEqual(events, ["reconnecting", "disconnected:transport-error:true", "connected", "disconnected:client-closed:false", "closed"]);
  });

  it("asks for a new token on every attempt", async () => {
    let n = 0;
    const h = await connect({ getToken: () => `t${++n}` });
    h.conn.end(1006);
    await reconnect(h);
    assert.deepEqual(h.conn.protocols, ["collab.v1", "bearer.t2"]);
  });

  it("a refused reconnect (HTTP 401) closes the client; so does Error{UNAUTHORIZED} to Hello", async () => {
    const h = await connect();
    h.conn.end(1006);
    h.scheduler.runNext();
    await flush();
    h.network.last.end(1006, "", 401);
    assert.equal(h.client.state, "closed");

    const h2 = await connect();
    h2.conn.end(1006);
    h2.scheduler.runNext();
    await flush();
    h2.network.last.open();
    h2.network.last.receive({ case: "error", value: { code: ErrorCode.UNAUTHORIZED, message: "expired", retryable: false } });
    assert.equal(h2.client.state, "closed");
  });

  it("4001 (auth expired): reconnects at once with a fresh token", async () => {
    let n = 0;
    const h = await connect({ getToken: () => `t${++n}` });
    const reconnecting: number[] = [];
    h.client.on("reconnecting", (e) => reconnecting.push(e.delayMs));
    h.conn.end(CloseCode.AUTH_EXPIRED, "token expired");
    assert.deepEqual(reconnecting, [0]);
    h.scheduler.advance(0);
    await flush();
    assert.deepEqual(h.network.last.protocols, ["collab.v1", "bearer.t2"]);
  });

  for (const code of [CloseCode.FORBIDDEN, CloseCode.POLICY_VIOLATION]) {
    it(`${code}: does not reconnect`, async () => {
      const h = await connect();
      const doc = await open(h, "d");
      let disconnected: { reason: string; willReconnect: boolean } | undefined;
      h.client.on("disconnected", (e) => (disconnected = { reason: e.reason, willReconnect: e.willReconnect }));
      h.conn.end(code, "no");
      assert.deepEqual(disconnected, { reason: "rejected", willReconnect: false });
      assert.equal(h.client.state, "closed");
      assert.ok(doc.closed);
      assert.equal(h.scheduler.runNext(), -1);
    });
  }

  for (const code of [1001, 1011, 1013, CloseCode.RATE_LIMITED, 1006]) {
    it(`${code}: reconnects with backoff`, async () => {
      const h = await connect();
      h.conn.end(code);
      assert.equal(h.client.state, "reconnecting");
      const delay = h.scheduler.runNext();
      assert.ok(delay >= 250 && delay <= 500, `delay ${delay}`);
      await flush();
      assert.equal(h.network.connections.length, 2);
    });
  }

  it("4009 (session replaced): drops the client id and says Hello without it", async () => {
    const h = await connect({}, "shared");
    assert.equal(JSON.parse(h.storage.getItem(`collab.client:${URL}`)!).id, "shared");
    let reason = "";
    h.client.on("disconnected", (e) => (reason = e.reason));
    h.conn.end(CloseCode.SESSION_REPLACED, "session replaced");
    assert.equal(reason, "session-replaced");
    assert.equal(h.storage.getItem(`collab.client:${URL}`), null);
    h.scheduler.runNext();
    await flush();
    h.network.last.open();
    assert.equal(h.network.last.take("hello").value.clientId, "");
  });

  it("Redirect while connected: closes 1000 and connects to the target after retry_after; a failed target falls back to the configured address", async () => {
    const h = await connect();
    h.scheduler.randoms = [0];
    const first = h.conn;
    first.receive({ case: "redirect", value: { url: "wss://node-3.test/ws", retryAfterMs: 500, reason: "ownership moved" } });
    assert.deepEqual(first.closedByClient, { code: 1000, reason: "redirected" });
    assert.equal(h.client.state, "reconnecting");
    assert.equal(h.scheduler.runNext(), 500);
    await flush();
    assert.equal(h.network.last.url, "wss://node-3.test/ws");
    h.network.last.end(1006);
    h.scheduler.runNext();
    await flush();
    assert.equal(h.network.last.url, URL);
  });

  it("resolves redirect urls: empty is the same address, relative against the current one, non-ws ignored", async () => {
    const { resolveRedirect } = await import("../src/client.js");
    assert.equal(resolveRedirect(URL, ""), URL);
    assert.equal(resolveRedirect(URL, "/ws2"), "ws://collab.test/ws2");
    assert.equal(resolveRedirect(URL, "https://evil.test/"), URL);
  });

  it("ignores a server message of a kind it does not know (a newer server, section 12)", async () => {
    const h = await connect();
    // ServerMessage{request_id: 1, field 40 (not in this schema): "x"}
    h.conn.receiveBytes(new Uint8Array([0x08, 0x01, 0xc2, 0x02, 0x01, 0x78]));
    assert.equal(h.client.state, "connected");
    assert.equal(h.conn.closedByClient, null);
  });

  it("an undecodable server message closes with 1007 and reconnects", async () => {
    const h = await connect();
    h.conn.receiveBytes(new Uint8Array([0xff, 0xff, 0xff]));
    assert.equal(h.conn.closedByClient?.code, 1007);
    assert.equal(h.client.state, "reconnecting");
  });
});

describe("keep-alive", () => {
  it("pings every interval and replaces a connection silent for ping + pong timeout", async () => {
    const h = await connect({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
    const first = h.conn;
    h.scheduler.advance(1000);
    assert.equal(first.take("ping").value.nonce, 1n);
    first.receive({ case: "pong", value: { nonce: 1n } });
    h.scheduler.advance(1000);
    assert.equal(first.take("ping").value.nonce, 2n);
    // Nothing answered since t=1000: dead once more than 1500 ms passed without a message.
    h.scheduler.advance(1000);
    assert.equal(h.client.state, "reconnecting");
    assert.equal(first.closedByClient?.reason, "keep-alive timeout");
  });

  it("any message proves liveness", async () => {
    const h = await connect({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
    for (let i = 0; i < 5; i++) {
      h.scheduler.advance(1000);
      h.conn.receive({ case: "unsubscribed", value: { docId: "x" } });
    }
    assert.equal(h.client.state, "connected");
  });
});

describe("re-authentication", () => {
  it("AuthExpiring: calls getToken('reauthenticate') and sends Reauthenticate on the same connection", async () => {
    const reasons: string[] = [];
    const h = await connect({ getToken: (r) => (reasons.push(r.reason), `tok-${reasons.length}`) });
    h.conn.receive({ case: "authExpiring", value: { expiresAtMs: 123n } });
    await flush();
    assert.equal(h.conn.take("reauth").value.token, "tok-2");
    assert.deepEqual(reasons, ["connect", "reauthenticate"]);
    assert.equal(h.network.connections.length, 1);
  });
});

describe("close", () => {
  it("closes with 1000, closes documents, rejects whenSynced and refuses new documents", async () => {
    const h = await connect();
    const doc = await open(h, "d");
    doc.insert(0, "x");
    const synced = doc.whenSynced();
    const closed = h.client.close();
    assert.deepEqual(h.conn.closedByClient, { code: 1000, reason: "client closing" });
    await closed;
    assert.equal(h.client.state, "closed");
    await assert.rejects(synced, DocumentClosedError);
    assert.throws(() => doc.insert(0, "y"), DocumentClosedError);
    await assert.rejects(h.client.openDocument("e"), CollabConnectionError);
    assert.equal(h.scheduler.runNext(), -1, "no timer left running");
  });

  it("does not wait more than 2 s for the server to answer the close", async () => {
    const h = await connect();
    h.conn.holdClose = true;
    const closed = h.client.close();
    h.scheduler.advance(2000);
    await closed;
  });

  it("await using closes the client", async () => {
    const h = await connect();
    {
      await using client = h.client;
      assert.equal(client.state, "connected");
    }
    assert.equal(h.client.state, "closed");
  });
});
