// Conformance checks of the Collab transport with Node's `ws` client.
// Usage: node conformance.mjs ws://127.0.0.1:PORT/ws MAX_MESSAGE_BYTES
// Prints "ok <case>" per passing case; exits non-zero with a reason on the first failure.
import { WebSocket } from 'ws';
import { randomBytes } from 'node:crypto';

const url = process.argv[2];
const maxMessageBytes = Number(process.argv[3]);
if (!url || !maxMessageBytes) {
  console.error('usage: node conformance.mjs <ws-url> <max-message-bytes>');
  process.exit(2);
}

function open(protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: false, maxPayload: 8 * 1024 * 1024 });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    ws.once('message', (data, isBinary) => resolve({ data, isBinary }));
    ws.once('close', (code, reason) => reject(new Error(`closed ${code} ${reason}`)));
  });
}

function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

const cases = {
  async 'text echo'() {
    const ws = await open();
    const text = 'héllo wörld — 你好 🎉';
    ws.send(text);
    const { data, isBinary } = await nextMessage(ws);
    assert(!isBinary && data.toString() === text, 'text did not echo as text');
    ws.close(1000);
    const { code } = await closed(ws);
    assert(code === 1000, `close code ${code}`);
  },

  async 'binary echo of every length class'() {
    const ws = await open();
    for (const length of [0, 125, 126, 65535, 65536, maxMessageBytes]) {
      const payload = randomBytes(length);
      ws.send(payload);
      const { data, isBinary } = await nextMessage(ws);
      assert(isBinary && Buffer.compare(data, payload) === 0, `binary of ${length} bytes did not echo intact`);
    }
    ws.close();
  },

  async 'fragmented message'() {
    const ws = await open();
    const payload = randomBytes(300_000);
    for (let offset = 0; offset < payload.length; offset += 70_000) {
      const end = Math.min(payload.length, offset + 70_000);
      ws.send(payload.subarray(offset, end), { fin: end === payload.length });
    }
    const { data } = await nextMessage(ws);
    assert(Buffer.compare(data, payload) === 0, 'fragmented message was not joined');
    ws.close();
  },

  async 'ping gets a pong with the same payload'() {
    const ws = await open();
    const payload = randomBytes(125);
    const pong = new Promise((resolve) => ws.once('pong', resolve));
    ws.ping(payload);
    const data = await pong;
    assert(Buffer.compare(data, payload) === 0, 'pong payload differs');
    ws.close();
  },

  async 'server pings are answered automatically'() {
    // The server's keep-alive must not disturb a ws client that answers pings (ws does so itself).
    const ws = await open();
    ws.send('still here');
    const { data } = await nextMessage(ws);
    assert(data.toString() === 'still here', 'echo after pings failed');
    ws.close();
  },

  async 'close code and reason are echoed'() {
    const ws = await open();
    ws.close(4000, 'done editing');
    const { code } = await closed(ws);
    assert(code === 4000, `server echoed ${code}`);
  },

  async 'sub-protocol negotiation'() {
    const ws = await open(['token.abc', 'collab.v1']);
    assert(ws.protocol === 'collab.v1', `negotiated '${ws.protocol}'`);
    ws.close();
  },

  async 'invalid UTF-8 text fails with 1007'() {
    const ws = await open();
    ws.send(Buffer.from([0x61, 0xc3, 0x28]), { binary: false });
    const { code } = await closed(ws);
    assert(code === 1007, `close code ${code}`);
  },

  async 'oversized message fails with 1009'() {
    const ws = await open();
    ws.send(randomBytes(maxMessageBytes + 1));
    const { code } = await closed(ws);
    assert(code === 1009, `close code ${code}`);
  },
};

for (const [name, run] of Object.entries(cases)) {
  try {
    await Promise.race([
      run(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), 10_000)),
    ]);
    console.log(`ok ${name}`);
  } catch (error) {
    console.error(`FAIL ${name}: ${error.message}`);
    process.exit(1);
  }
}
process.exit(0);
