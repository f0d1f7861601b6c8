/**
 * Wire helpers over the code generated from `src/Protocol/Protos/collab/v1/collab.proto` (one schema for the
 * server, the C# SDK and this one), and the protocol's codes.
 * @module
 */
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { ClientMessageSchema, ErrorCode, ServerMessageSchema, type ServerMessage } from "./gen/collab/v1/collab_pb.js";

export { ErrorCode };

/** The wire protocol version this SDK speaks (`Hello.protocol_version`). */
export const PROTOCOL_VERSION = 1;

/** The WebSocket subprotocol of protocol version 1. */
export const SUBPROTOCOL = "collab.v1";

/** Prefix of the extra offered subprotocol that carries the access token (PROTOCOL.md section 1.1). */
export const BEARER_SUBPROTOCOL_PREFIX = "bearer.";

/**
 * `ERROR_CODE_ALREADY_COMMITTED` (21): a resent (client id, seq) was committed earlier and the server's op log no
 * longer holds it. The in-flight op is in the server's document (PROTOCOL.md section 7.3, "f is in T"); never a
 * rejection.
 */
export const ERROR_CODE_ALREADY_COMMITTED = 21 as ErrorCode;

/** WebSocket close codes of the protocol (PROTOCOL.md section 10). */
export const CloseCode = {
  NormalClosure: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  /** No close frame: the connection failed or was cut (never sent on the wire). */
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011,
  TryAgainLater: 1013,
  /** The token expired without a Reauthenticate, or was revoked: reconnect at once with a fresh token. */
  AuthExpired: 4001,
  /** The user's access was revoked, or a Reauthenticate carried another user's token: do not reconnect. */
  Forbidden: 4003,
  /** The client kept exceeding a limit. */
  RateLimited: 4008,
  /** A newer connection took over this client id: drop the id and reconnect under a fresh one. */
  SessionReplaced: 4009,
} as const;

/** The presence `user_data` limit (PROTOCOL.md section 11). */
export const MAX_PRESENCE_BYTES = 1024;

/** @internal A client message body, as the generated oneof. */
export type ClientBody = Exclude<MessageInitShape<typeof ClientMessageSchema>["body"], undefined | { case: undefined }>;

/** @internal */
export function encodeClientMessage(requestId: number, body: ClientBody): Uint8Array {
  return toBinary(ClientMessageSchema, create(ClientMessageSchema, { requestId: BigInt(requestId), body }));
}

/** @internal Throws when the bytes are not a ServerMessage. */
export function decodeServerMessage(bytes: Uint8Array): ServerMessage {
  return fromBinary(ServerMessageSchema, bytes);
}

/** Names an error code for messages (`VERSION_TOO_OLD`), or its number when this SDK does not know it. */
export function errorCodeName(code: ErrorCode): string {
  if (code === ERROR_CODE_ALREADY_COMMITTED) {
    return "ALREADY_COMMITTED";
  }
  return ErrorCode[code] ?? String(code);
}
