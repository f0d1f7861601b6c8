'use strict';
// The ShareDB 7 server the load tool compares Collab with (`loadtest <scenario> --target sharedb --spawn-server`):
// ot-text-unicode registered, ShareDB's default in-memory database (MemoryDB) and in-process pub/sub, WebSocket
// transport through `ws` and @teamwork/websocket-json-stream, as ShareDB's own examples wire it. Nothing is durable.
//   PORT (default 9101) and BIND (default 127.0.0.1) from the environment, or --port N.
// Prints "sharedb-server listening on HOST:PORT" when ready; on SIGTERM/SIGINT a STATS line (event-loop lag).
const http = require('http');
const { monitorEventLoopDelay } = require('perf_hooks');
const WebSocket = require('ws');
const ShareDB = require('sharedb');
const WebSocketJSONStream = require('@teamwork/websocket-json-stream');
const otText = require('ot-text-unicode');

ShareDB.types.register(otText.type);

const portArg = process.argv.indexOf('--port');
const PORT = parseInt(portArg > 0 ? process.argv[portArg + 1] : process.env.PORT || '9101', 10);
const HOST = process.env.BIND || '127.0.0.1';

const backend = new ShareDB(); // ShareDB.MemoryDB + in-process PubSub
const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const wss = new WebSocket.Server({ server, perMessageDeflate: false, backlog: 4096 });

let conns = 0;
wss.on('connection', (ws) => {
  conns++;
  ws.on('close', () => { conns--; });
  ws.on('error', () => {});
  const stream = new WebSocketJSONStream(ws);
  // Without this, a write racing a client's close emits ERR_CLOSED as an unhandled 'error' and kills the process
  // (seen when thousands of clients close at once).
  stream.on('error', () => {});
  backend.listen(stream);
});

// The server's own event-loop lag (5 ms resolution): a stall on ShareDB's one thread shows here.
const LAG_RES_MS = 5;
const lag = monitorEventLoopDelay({ resolution: LAG_RES_MS });
lag.enable();
const ms = (ns) => Math.round(Math.max(0, ns / 1e6 - LAG_RES_MS) * 10) / 10;

server.listen({ port: PORT, host: HOST, backlog: 4096 }, () => {
  console.log(`sharedb-server listening on ${HOST}:${PORT} pid=${process.pid} sharedb=${require('sharedb/package.json').version} node=${process.version}`);
});

function shutdown() {
  console.log('STATS ' + JSON.stringify({ connections: conns, loop_lag_ms: { p50: ms(lag.percentile(50)), p99: ms(lag.percentile(99)), max: ms(lag.max) } }));
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
