/**
 * What the sync state machine ({@link SyncDocument}) needs from an OT type: the documents and ops of `text-unicode`
 * and `rich-text` differ, the client algorithm (PROTOCOL.md sections 5 to 8) does not.
 * @module
 */
import type { Snapshot } from "./gen/collab/v1/collab_pb.js";
import type { TransformSide } from "./text.js";

/** @internal An OT type as the SDK runs it: `D` the document, `O` an op (in normal form). */
export interface OtType<D, O> {
  /** The type's name on the wire (`Subscribe.type`, `Snapshot.type`). */
  readonly name: string;
  /** The document a snapshot carries (throws when it is malformed). */
  fromSnapshot(snapshot: Snapshot): D;
  /** The op in normal form; throws `InvalidOpError` for what is not an op of this type. */
  normalize(op: unknown): O;
  /** The op changes nothing. */
  isNoop(op: O): boolean;
  /** The op that changes nothing. */
  noop(): O;
  /** The document's length in the units positions count (code points for text, UTF-16 units for rich text). */
  length(document: D): number;
  /** Throws `InvalidOpError` unless the op applies to the document. */
  checkFits(op: O, document: D): void;
  apply(document: D, op: O): D;
  transform(op: O, other: O, side: TransformSide): O;
  compose(a: O, b: O): O;
  invert(op: O, before: D): O;
  /** An op turning one document into the other. */
  diff(before: D, after: D): O;
  transformCursor(cursor: number, op: O, isOwnOp: boolean): number;
  /** The wire encoding (docs/OT.md section 8 or 20). */
  encode(op: O): Uint8Array;
  /** Throws `MalformedOpError` for bytes that are not a canonical encoding. */
  decode(bytes: Uint8Array): O;
}
