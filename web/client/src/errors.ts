/**
 * Errors the SDK reports.
 * @module
 */
import { ErrorCode, errorCodeName } from "./protocol.js";

/** An `Error` message from the server (PROTOCOL.md section 9). */
export class CollabServerError extends Error {
  override name = "CollabServerError";

  /** @internal */
  constructor(
    /** The wire error code. */
    readonly code: ErrorCode,
    message: string,
    /** The same request may succeed later (the SDK retries these itself). */
    readonly retryable: boolean,
    /** The document concerned, if any. */
    readonly docId: string | null,
    /** For a rejected submit: its client seq; else 0. */
    readonly clientSeq: number,
  ) {
    super(`${errorCodeName(code)}: ${message}`);
  }

  /** The code's name, e.g. `VERSION_TOO_OLD`. */
  get codeName(): string {
    return errorCodeName(this.code);
  }
}

/** The connection could not be made, or was refused, or the client is closed. */
export class CollabConnectionError extends Error {
  override name = "CollabConnectionError";

  /** @internal */
  constructor(
    message: string,
    /** The WebSocket close code, when the connection was closed. */
    readonly closeCode?: number,
    /** The HTTP status of a refused upgrade, when the platform reveals it (Node; never in browsers). */
    readonly httpStatus?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The document or its client was closed. */
export class DocumentClosedError extends Error {
  override name = "DocumentClosedError";
}

/**
 * The document exists with another OT type than the one it was opened as (decision P6): the server refused the
 * subscribe with `TYPE_MISMATCH`, or (a server from before P6) sent a snapshot of another type, which this client then
 * refused. Open it with the class of its type ({@link CollabClient.openDocument} for `text-unicode`,
 * `openRichDocument(client, id)` for `rich-text`). Not retryable.
 */
export class DocumentTypeError extends CollabServerError {
  override name = "DocumentTypeError";

  /** @internal */
  constructor(
    docId: string,
    /** The type the document was opened as. */
    readonly requestedType: string,
    /** The document's type, when the client learnt it (a snapshot named it); `null` when the server refused. */
    readonly documentType: string | null,
    message?: string,
  ) {
    super(
      ErrorCode.TYPE_MISMATCH,
      message ?? `Document '${docId}' is a ${documentType ?? "different"} document; it was opened as ${requestedType}.`,
      false,
      docId,
      0,
    );
  }
}
