/**
 * The sparse-extent snapshot format, version 2 (byte-compatible with upstream atelet):
 *
 *     "ATESPRSE" | version u32 LE = 2 | zstd( size i64 | (offset i64, length i64, data)* | -1 i64 )
 *
 * Magic and version are in the clear; everything after them is one zstd stream (any number of
 * concatenated frames) holding the logical size, then each populated extent in ascending order,
 * then the end sentinel: an offset of -1 with no length. All integers little-endian. A stream that
 * does not start with the magic is a plain zstd stream of the whole (dense) image.
 *
 * This module holds the pure parts: the clear header and an incremental parser of the decompressed
 * body that validates as it goes (sizes, ranges, order, sentinel, trailing bytes).
 *
 * @module
 */

/** The 8 clear bytes that open a sparse-extent stream (not a valid zstd frame magic). */
export const MAGIC = new TextEncoder().encode("ATESPRSE");
/** The format version this build writes and reads. */
export const VERSION = 2;
/** Bytes before the zstd stream: magic + version. */
export const HEADER_LENGTH = 12;
/** The offset that ends the extent list. */
export const END_OFFSET = -1n;

/** The 12-byte clear header. */
export function encodeHeader(): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(HEADER_LENGTH);
  out.set(MAGIC);
  new DataView(out.buffer).setUint32(8, VERSION, true);
  return out;
}

/** True when `head` (at least 8 bytes) starts with the magic. */
export function hasMagic(head: Uint8Array): boolean {
  return head.length >= MAGIC.length && MAGIC.every((b, i) => head[i] === b);
}

/** Reads the version from a 12-byte header; throws unless it is {@link VERSION}. */
export function checkVersion(header: Uint8Array): void {
  const version = new DataView(header.buffer, header.byteOffset, header.byteLength)
    .getUint32(8, true);
  if (version !== VERSION) {
    throw new FormatError(
      `unsupported sparse snapshot format version ${version} (this build reads ${VERSION}); ` +
        `pack it again with a matching version`,
    );
  }
}

/** i64 LE encodings of the body's fields, for the encoder. */
export function encodeI64(...values: number[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(8 * values.length);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setBigInt64(8 * i, BigInt(v), true));
  return out;
}

/** A malformed or truncated snapshot stream. */
export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FormatError";
  }
}

/** What the body parser found, in stream order. `data` views the input chunk (copy to keep). */
export type BodyEvent =
  | { kind: "size"; size: number }
  | { kind: "extent"; offset: number; length: number }
  | { kind: "data"; offset: number; bytes: Uint8Array }
  | { kind: "end" };

type State = "size" | "offset" | "length" | "data" | "end";

/**
 * Incremental parser of the decompressed body. Feed chunks of any size with {@link push}; call
 * {@link finish} at the end of input. Throws a FormatError (one line) on the first violation.
 * Zero-length extents are accepted (upstream's reader does); extents must not overlap or descend.
 */
export class BodyParser {
  #state: State = "size";
  #field = new Uint8Array(8);
  #fieldFill = 0;
  #size = 0;
  #offset = 0;
  #remaining = 0;
  #previousEnd = 0;
  #extents = 0;

  /** The logical size, once parsed. */
  get size(): number {
    return this.#size;
  }

  push(chunk: Uint8Array): BodyEvent[] {
    const events: BodyEvent[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#state === "end") {
        throw new FormatError(
          `trailing data after the end sentinel (${
            chunk.length - pos
          } more bytes); the stream is corrupt`,
        );
      }
      if (this.#state === "data") {
        const n = Math.min(this.#remaining, chunk.length - pos);
        events.push({ kind: "data", offset: this.#offset, bytes: chunk.subarray(pos, pos + n) });
        pos += n;
        this.#offset += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = "offset";
        continue;
      }
      const n = Math.min(8 - this.#fieldFill, chunk.length - pos);
      this.#field.set(chunk.subarray(pos, pos + n), this.#fieldFill);
      this.#fieldFill += n;
      pos += n;
      if (this.#fieldFill < 8) break;
      this.#fieldFill = 0;
      const value = new DataView(this.#field.buffer).getBigInt64(0, true);
      const event = this.#onField(value);
      if (event) events.push(event);
    }
    return events;
  }

  #onField(value: bigint): BodyEvent | undefined {
    switch (this.#state) {
      case "size": {
        if (value < 0n) throw new FormatError(`negative image size ${value} in the stream header`);
        if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new FormatError(`image size ${value} is too large`);
        }
        this.#size = Number(value);
        this.#state = "offset";
        return { kind: "size", size: this.#size };
      }
      case "offset": {
        if (value === END_OFFSET) {
          this.#state = "end";
          return { kind: "end" };
        }
        if (value < 0n || value > BigInt(this.#size)) {
          throw new FormatError(`extent out of range (offset=${value} size=${this.#size})`);
        }
        this.#offset = Number(value);
        this.#state = "length";
        return undefined;
      }
      case "length": {
        if (value < 0n || value > BigInt(this.#size - this.#offset)) {
          throw new FormatError(
            `extent out of range (offset=${this.#offset} length=${value} size=${this.#size})`,
          );
        }
        if (this.#offset < this.#previousEnd) {
          throw new FormatError(
            `extent at offset ${this.#offset} overlaps or precedes the previous extent ending at ${this.#previousEnd}`,
          );
        }
        const length = Number(value);
        this.#remaining = length;
        this.#previousEnd = this.#offset + length;
        this.#extents++;
        this.#state = length === 0 ? "offset" : "data";
        return { kind: "extent", offset: this.#offset, length };
      }
      default:
        throw new Error(`unreachable parser state ${this.#state}`);
    }
  }

  /** Throws unless the body ended exactly after the end sentinel. */
  finish(): void {
    switch (this.#state) {
      case "end":
        return;
      case "size":
        throw new FormatError("truncated stream: it ended before the image size");
      case "offset":
        if (this.#fieldFill === 0) {
          throw new FormatError(
            `truncated stream: missing end sentinel after ${this.#extents} extents`,
          );
        }
        throw new FormatError("truncated stream: it ended inside an extent header");
      case "length":
        throw new FormatError("truncated stream: it ended inside an extent header");
      case "data":
        throw new FormatError(
          `truncated stream: it ended inside the extent data at offset ${this.#offset} (${this.#remaining} bytes missing)`,
        );
    }
  }
}
