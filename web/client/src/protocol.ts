/**
 * Wire helpers over the code generated from `src/Protocol/Protos/collab/v1/collab.proto` (one schema for the
 * server, the C# SDK and this one), and the protocol's codes.
 * @module
 */
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { ClientMessageSchema, CloseCode, ErrorCode, ServerMessageSchema, type ServerMessage } from "./gen/collab/v1/collab_pb.js";

export { ErrorCode };

/** The wire protocol version this SDK speaks (`Hello.protocol_version`). */
export const PROTOCOL_VERSION = 1;

/** The WebSocket subprotocol of protocol version 1. */
export const SUBPROTOCOL = "collab.v1";

/** Prefix of the extra offered subprotocol that carries the access token (PROTOCOL.md section 1.1). */
export const BEARER_SUBPROTOCOL_PREFIX = "bearer.";

/**
 * The close codes of the protocol (PROTOCOL.md section 10), generated from `enum CloseCode` of collab.proto: one
 * definition for the server, the C# SDK and this SDK (`CloseCode.SESSION_REPLACED` is 4009).
 */
export { CloseCode };

/** No close frame: the connection failed or was cut (1006, never sent on the wire, so not in the schema's enum). */
export const ABNORMAL_CLOSURE = 1006;

/** Presence `user_data` limit when the server announces none (`Welcome.max_presence_bytes` 0; PROTOCOL.md section 11). */
export const DEFAULT_MAX_PRESENCE_BYTES = 1024;

/** Encoded op limit when the server announces none (`Welcome.max_op_bytes` 0). */
export const DEFAULT_MAX_OP_BYTES = 256 * 1024;

/** Message size limit when the server announces none (`Welcome.max_message_bytes` 0). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/** The limits a server announced in `Welcome`, with section 11's defaults for those it left at 0. */
export interface AnnouncedLimits {
  /** Largest ClientMessage, bytes. */
  maxMessageBytes: number;
  /** Largest encoded `Submit.op`, bytes. */
  maxOpBytes: number;
  /** Largest presence `user_data`, bytes. */
  maxPresenceBytes: number;
}

/** @internal */
export function announcedLimits(welcome: { maxMessageBytes: number; maxOpBytes: number; maxPresenceBytes: number } | null): AnnouncedLimits {
  return {
    maxMessageBytes: welcome?.maxMessageBytes || DEFAULT_MAX_MESSAGE_BYTES,
    maxOpBytes: welcome?.maxOpBytes || DEFAULT_MAX_OP_BYTES,
    maxPresenceBytes: welcome?.maxPresenceBytes || DEFAULT_MAX_PRESENCE_BYTES,
  };
}

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
  return ErrorCode[code] ?? String(code);
}
