/**
 * `@collab/client`: the browser and Node SDK of Collab, a real-time collaborative document server.
 *
 * ```ts
 * import { CollabClient } from "@collab/client";
 *
 * const client = await CollabClient.connect({ url: "wss://collab.example.com/ws", getToken: fetchToken });
 * const doc = await client.openDocument("notes/today");
 * doc.on("change", (e) => editor.apply(e.utf16Changes));
 * doc.insert(0, "Hello");
 * await doc.whenSynced();
 * ```
 *
 * Rich-text documents (Quill's Delta) are in `@collab/client/rich` (`openRichDocument(client, id)`), so that a page
 * editing plain text never bundles quill-delta.
 * @module
 */
export { CollabClient, resolveRedirect } from "./client.js";
export type {
  CollabClientOptions,
  ClientEvents,
  ConnectedEvent,
  ConnectionState,
  DisconnectReason,
  DisconnectedEvent,
  NetworkEvents,
  ReconnectingEvent,
  TokenRequest,
} from "./client.js";
export { CollabDocument } from "./document.js";
export type {
  AckEvent,
  DocumentChangeEvent,
  DocumentEvents,
  LocalChangeEvent,
  OpenDocumentOptions,
  PresenceEvent,
  RemotePresence,
} from "./document.js";
export type { SyncDocument, SyncDocumentEvents } from "./sync.js";
export { UndoManager } from "./undo.js";
export type { UndoManagerOptions } from "./undo.js";
export { CollabConnectionError, CollabServerError, DocumentClosedError, DocumentTypeError } from "./errors.js";
export type { Unsubscribe } from "./events.js";
export { backoffDelay } from "./backoff.js";
export type { ReconnectPolicy } from "./backoff.js";
export { MemoryStorage, SEQ_BLOCK } from "./storage.js";
export type { ClientStorage } from "./storage.js";
export { webSocketTransport } from "./transport.js";
export type { Transport, TransportClose, TransportFactory, TransportHandlers, WebSocketConstructor, WebSocketLike } from "./transport.js";
export type { Scheduler, TimerHandle } from "./scheduler.js";
export {
  ABNORMAL_CLOSURE,
  CloseCode,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_OP_BYTES,
  DEFAULT_MAX_PRESENCE_BYTES,
  ErrorCode,
  errorCodeName,
  PROTOCOL_VERSION,
  SUBPROTOCOL,
} from "./protocol.js";
export type { AnnouncedLimits } from "./protocol.js";
export { decodeTextOp, encodeTextOp, MalformedOpError } from "./codec.js";
export {
  apply,
  codePointLength,
  codePointToUtf16,
  compose,
  deleteOp,
  diff,
  insertOp,
  InvalidOpError,
  invert,
  normalize,
  opFromUtf16Changes,
  opToUtf16Changes,
  TEXT_TYPE_NAME,
  transform,
  transformCursor,
  utf16ToCodePoint,
} from "./text.js";
export type { TextOp, TextOpComponent, TransformSide, Utf16Change } from "./text.js";
