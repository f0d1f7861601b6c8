/**
 * The SDK in Node against the real server process, behaviour by behaviour: tokens through getToken (subprotocol,
 * AuthExpiring then Reauthenticate), the HttpOnly-cookie way, presence, a server killed with SIGKILL and restarted
 * under offline edits, and a session taken over by a second connection with the same client id (4009).
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { SignJWT } from "jose";
import { WebSocket } from "ws";
import { CollabClient, type CollabClientOptions, type DisconnectedEvent } from "../src/client.js";
import type { CollabDocument } from "../src/document.js";
import { CollabConnectionError } from "../src/errors.js";
import { MemoryStorage } from "../src/storage.js";
import type { WebSocketConstructor } from "../src/transport.js";
import { ServerProcess } from "./server.js";

const ISSUER = "https://idp.test/";
const AUDIENCE = "collab-test";
const SECRET = "a-test-secret-that-is-long-enough-for-hs256!";
const JWT_SETTINGS = { "Auth:Mode": "Jwt", "Auth:Issuers:0": ISSUER, "Auth:Audiences:0": AUDIENCE, "Auth:SigningKey": SECRET };
const ws = WebSocket as unknown as WebSocketConstructor;

/** A token as an identity provider would issue it (jose, HS256). */
async function token(sub: string, lifetimeSeconds: number): Promise<string> {
  return new SignJWT({ collab: { read: ["*"], write: ["*"] } })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + lifetimeSeconds)
    .sign(new TextEncoder().encode(SECRET));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(20);
  }
}

/** Every client a test connects, closed when the test ends however it ends (an open client keeps Node alive). */
const open = new Set<CollabClient>();
afterEach(async () => {
  await Promise.all([...open].map((c) => c.close()));
  open.clear();
});

async function connect(opts: CollabClientOptions): Promise<CollabClient> {
  const client = await CollabClient.connect(opts);
  open.add(client);
  return client;
}

function options(server: ServerProcess, extra: Partial<CollabClientOptions> = {}): CollabClientOptions {
  return { url: server.url, webSocket: ws, storage: new MemoryStorage(), reconnect: { minDelayMs: 50, maxDelayMs: 500 }, ...extra };
}

describe("tokens from getToken against a server in Jwt mode", { timeout: 120_000 }, () => {
  let server: ServerProcess;
  before(async () => {
    // AuthExpiring goes out ExpiryWarning before exp + ClockSkew: with a 4 s token, after about 1 s.
    server = await ServerProcess.start({ ...JWT_SETTINGS, "Auth:ClockSkew": "00:00:00", "Auth:ExpiryWarning": "00:00:03" });
  });
  after(async () => server?.dispose());

  it("connects with the token as bearer.<token>, answers AuthExpiring with Reauthenticate and stays connected past the first token's expiry", async () => {
    const reasons: string[] = [];
    const client = await connect(
      options(server, {
        getToken: async (request) => {
          reasons.push(request.reason);
          return token("alice", request.reason === "connect" ? 4 : 600);
        },
      }),
    );
    const disconnects: DisconnectedEvent[] = [];
    client.on("disconnected", (e) => disconnects.push(e));
    const doc = await client.openDocument("auth/reauth");
    await until(() => reasons.includes("reauthenticate"), "AuthExpiring");
    await sleep(5000); // past the first token's expiry: without the Reauthenticate the server would close with 4001
    doc.insert(0, "still here");
    await doc.whenSynced();
    assert.deepEqual(reasons, ["connect", "reauthenticate"]);
    assert.deepEqual(disconnects, []);
    await client.close();
  });

  it("a refused token fails the first connect with the HTTP status (Node sees it), and nothing is retried", async () => {
    let calls = 0;
    const error = await CollabClient.connect(
      options(server, {
        getToken: () => {
          calls++;
          return "not-a-jwt";
        },
      }),
    ).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(error instanceof CollabConnectionError);
    assert.equal(error.httpStatus, 401);
    assert.equal(calls, 1);
  });

  it("a Reauthenticate for another user closes the connection with 4003 and the client stops", async () => {
    const client = await connect(
      options(server, { getToken: async (request) => token(request.reason === "connect" ? "bob" : "mallory", request.reason === "connect" ? 4 : 600) }),
    );
    let disconnected: DisconnectedEvent | undefined;
    client.on("disconnected", (e) => (disconnected = e));
    await until(() => disconnected !== undefined, "the 4003 close");
    assert.equal(disconnected!.closeCode, 4003);
    assert.equal(disconnected!.willReconnect, false);
    assert.equal(client.state, "closed");
  });
});

describe("the token in an HttpOnly cookie", { timeout: 120_000 }, () => {
  let server: ServerProcess;
  before(async () => {
    server = await ServerProcess.start({ ...JWT_SETTINGS, "Auth:CookieName": "collab_at", "Transport:AllowedOrigins:0": "https://app.test" });
  });
  after(async () => server?.dispose());

  /** What a browser on `origin` holding the cookie sends: Origin and Cookie headers, no token the page can see. */
  function browserSocket(origin: string, cookie: string): WebSocketConstructor {
    return class extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, { headers: { Origin: origin, Cookie: cookie } });
      }
    } as unknown as WebSocketConstructor;
  }

  it("connects without getToken from the application's origin", async () => {
    const cookie = `collab_at=${await token("carol", 600)}`;
    const client = await connect(options(server, { webSocket: browserSocket("https://app.test", cookie) }));
    const doc = await client.openDocument("cookie/doc");
    doc.insert(0, "via cookie");
    await doc.whenSynced();
    await client.close();
  });

  it("is refused (403) from another origin, valid cookie or not", async () => {
    const cookie = `collab_at=${await token("carol", 600)}`;
    const error = await CollabClient.connect(options(server, { webSocket: browserSocket("https://evil.test", cookie) })).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(error instanceof CollabConnectionError);
    assert.equal(error.httpStatus, 403);
  });
});

describe("collaboration through the real server", { timeout: 180_000 }, () => {
  let server: ServerProcess;
  before(async () => {
    server = await ServerProcess.start();
  });
  after(async () => server?.dispose());

  it("shows a remote selection, moved by its owner's typing, and removes it when the owner leaves", async () => {
    const a = await connect(options(server));
    const b = await connect(options(server));
    const docA = await a.openDocument("presence/doc");
    docA.insert(0, "hello world");
    await docA.whenSynced();
    const docB = await b.openDocument("presence/doc");
    docA.setPresence(5, 5, JSON.stringify({ name: "Ann", color: "#c33" }));
    await until(() => docB.presences.get(a.clientId)?.head === 5, "A's caret at B");
    assert.deepEqual(JSON.parse(new TextDecoder().decode(docB.presences.get(a.clientId)!.userData)), { name: "Ann", color: "#c33" });
    docA.insert(5, ",");
    await until(() => docB.text === "hello, world" && docB.presences.get(a.clientId)?.head === 6, "A's caret moved by A's typing");
    await a.close();
    await until(() => !docB.presences.has(a.clientId), "A's presence cleared");
    await b.close();
  });

  it("survives a SIGKILL of the server: acknowledged edits are kept, offline edits are sent after the restart, replicas converge", async () => {
    const clients: CollabClient[] = [];
    const docs: CollabDocument[] = [];
    for (let i = 0; i < 6; i++) {
      const client = await connect(options(server));
      clients.push(client);
      docs.push(await client.openDocument(`crash/doc-${i % 2}`));
    }
    docs.forEach((doc, i) => doc.insert(0, `[before ${i}]`));
    await Promise.all(docs.map((d) => d.whenSynced()));
    await server.kill();
    await until(() => clients.every((c) => c.state === "reconnecting"), "every client noticing the crash");
    docs.forEach((doc, i) => doc.insert(doc.length, `[offline ${i}]`));
    await sleep(300);
    await server.startAgain();
    await Promise.all(docs.map((d) => d.whenSynced()));
    for (const docId of ["crash/doc-0", "crash/doc-1"]) {
      const replicas = docs.filter((d) => d.id === docId);
      await until(() => replicas.every((d) => d.version === replicas[0]!.version && d.text === replicas[0]!.text), `${docId} converging`);
      for (const [i, doc] of docs.entries()) {
        if (doc.id !== docId) {
          continue;
        }
        for (const mark of [`[before ${i}]`, `[offline ${i}]`]) {
          assert.equal(replicas[0]!.text.split(mark).length - 1, 1, `${docId} holds ${mark} exactly once: ${replicas[0]!.text}`);
        }
      }
    }
    await Promise.all(clients.map((c) => c.close()));
  });

  // Waits for helper `core` (decision P4): the server closes the older connection of a client id with 4009.
  it("a second connection with the same client id (a duplicated tab) takes over; the first gets 4009, takes a fresh id and loses nothing", async () => {
    const storage = new MemoryStorage();
    const first = await connect(options(server, { storage }));
    const firstDoc = await first.openDocument("takeover/doc");
    firstDoc.insert(0, "A1 ");
    await firstDoc.whenSynced();
    const sharedId = first.clientId;
    const reasons: string[] = [];
    first.on("disconnected", (e) => reasons.push(e.reason));

    // Duplicating a tab copies its sessionStorage: the copy resumes the same client id.
    const copy = new MemoryStorage();
    for (const key of [`collab.client:${server.url}`]) {
      copy.setItem(key, storage.getItem(key)!);
    }
    firstDoc.insert(firstDoc.length, "A2 "); // in flight around the takeover
    const second = await connect(options(server, { storage: copy }));
    assert.equal(second.clientId, sharedId);
    const secondDoc = await second.openDocument("takeover/doc");
    secondDoc.insert(0, "B1 ");

    await until(() => reasons.includes("session-replaced"), "the first connection closed with 4009", 5000);
    await until(() => first.state === "connected", "the first client back");
    assert.notEqual(first.clientId, sharedId);
    await Promise.all([firstDoc.whenSynced(), secondDoc.whenSynced()]);
    await until(() => firstDoc.text === secondDoc.text && firstDoc.version === secondDoc.version, "convergence");
    for (const mark of ["A1 ", "A2 ", "B1 "]) {
      assert.equal(firstDoc.text.split(mark).length - 1, 1, `${mark} exactly once in ${JSON.stringify(firstDoc.text)}`);
    }
    await Promise.all([first.close(), second.close()]);
  });
});
