/**
 * The connection under the client: one WebSocket per session. The default transport uses the platform's
 * `WebSocket` (browsers, Node 22+); in Node 20 pass the `ws` package's class. Tests plug in a fake.
 * @module
 */

/** How a transport ended. */
export interface TransportClose {
  /** WebSocket close code (1006 when the connection failed without a close frame). */
  code: number;
  reason: string;
  /** The HTTP status of a refused upgrade, when the platform reveals it (Node's `ws` does; browsers never do). */
  httpStatus?: number;
  /** The underlying failure, if any. */
  error?: Error;
}

/** What a transport reports to the client. Called asynchronously, never from inside `send` or `close`. */
export interface TransportHandlers {
  /** The connection is open; `protocol` is the subprotocol the server selected. */
  onOpen(protocol: string): void;
  /** One binary message. */
  onMessage(data: Uint8Array): void;
  /** The connection ended (after `onOpen`, or instead of it when it could not be made). Called once. */
  onClose(close: TransportClose): void;
}

/** One connection. */
export interface Transport {
  /** Sends one binary message. Ignored once the connection is closing. */
  send(data: Uint8Array): void;
  /** Starts a close handshake (code 1000 or 3000-4999). `onClose` follows. */
  close(code: number, reason: string): void;
}

/** Opens a connection to `url` offering `protocols` (`collab.v1`, and `bearer.<token>` when there is a token). */
export type TransportFactory = (url: string, protocols: string[], handlers: TransportHandlers) => Transport;

/** The WebSocket class the default transport instantiates: the browser's, or `ws` in Node. */
export interface WebSocketConstructor {
  new (url: string, protocols?: string | string[]): WebSocketLike;
}

/** The subset of the WHATWG WebSocket the transport uses (the browser's and `ws` both have it). */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: never) => void): void;
}

interface CloseEventLike {
  code: number;
  reason: string;
}

interface ErrorEventLike {
  error?: unknown;
  message?: string;
}

const OPEN = 1;
// ws reports a refused upgrade as an error "Unexpected server response: 401".
const UNEXPECTED_RESPONSE = /Unexpected server response: (\d{3})/;

/**
 * The transport over a WHATWG `WebSocket` (`globalThis.WebSocket` unless another class is given, e.g. `ws`'s in
 * Node 20). Messages are binary (`binaryType = "arraybuffer"`); a text message is a protocol error and closes the
 * connection with 1003.
 */
export function webSocketTransport(webSocket?: WebSocketConstructor): TransportFactory {
  return (url, protocols, handlers) => {
    const ctor = webSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (ctor === undefined) {
      throw new Error("No WebSocket in this environment: pass one (e.g. `import { WebSocket } from \"ws\"`) as the `webSocket` option.");
    }
    const socket = new ctor(url, protocols);
    socket.binaryType = "arraybuffer";
    let failure: Error | undefined;
    let httpStatus: number | undefined;
    let closed = false;
    socket.addEventListener("open", () => handlers.onOpen(socket.protocol));
    socket.addEventListener("message", (event: { data: unknown }) => {
      const data = event.data;
      if (data instanceof ArrayBuffer) {
        handlers.onMessage(new Uint8Array(data));
      } else if (ArrayBuffer.isView(data)) {
        handlers.onMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      } else {
        socket.close(1003, "text messages are not part of the protocol");
      }
    });
    socket.addEventListener("error", (event: ErrorEventLike) => {
      failure = event.error instanceof Error ? event.error : new Error(event.message || "WebSocket error");
      const status = UNEXPECTED_RESPONSE.exec(failure.message);
      if (status !== null) {
        httpStatus = Number(status[1]);
      }
    });
    socket.addEventListener("close", (event: CloseEventLike) => {
      if (closed) {
        return;
      }
      closed = true;
      const close: TransportClose = { code: event.code, reason: event.reason };
      if (httpStatus !== undefined) {
        close.httpStatus = httpStatus;
      }
      if (failure !== undefined) {
        close.error = failure;
      }
      handlers.onClose(close);
    });
    return {
      send(data) {
        if (socket.readyState === OPEN) {
          socket.send(data);
        }
      },
      close(code, reason) {
        try {
          socket.close(code, reason);
        } catch {
          // Already closing or closed.
        }
      },
    };
  };
}
