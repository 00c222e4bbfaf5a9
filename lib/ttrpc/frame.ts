/**
 * ttrpc framing: every message on a ttrpc connection is a 10-byte big-endian header
 * (payload length u32, stream id u32, message type u8, flags u8) followed by the payload.
 *
 * Pure byte handling, no sockets: {@link encodeFrame} builds one frame, {@link FrameDecoder}
 * turns an arbitrary chunking of the byte stream back into whole frames. Payloads over
 * {@link MAX_MESSAGE_SIZE} are refused in both directions (see docs/ttrpc.md).
 *
 * @module
 */

/** Length of the fixed frame header in bytes. */
export const FRAME_HEADER_LENGTH = 10;
/** Frame type of a request (client to server). */
export const MESSAGE_TYPE_REQUEST = 1;
/** Frame type of a response (server to client). */
export const MESSAGE_TYPE_RESPONSE = 2;
/** Largest payload ttrpc accepts, as the Go implementation: 4 MiB. */
export const MAX_MESSAGE_SIZE = 4 << 20;

/** One decoded frame. */
export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Uint8Array;
  /**
   * Set only by a decoder in `skipOversized` mode: the announced payload length of a frame that
   * exceeded the limit. Its payload was discarded and `payload` is empty.
   */
  oversizedLength?: number;
}

/** A frame whose payload is longer than the limit in force. */
export class FrameTooLargeError extends Error {
  constructor(
    readonly length: number,
    readonly limit: number,
    readonly streamId: number,
    direction: "send" | "receive",
  ) {
    super(
      `ttrpc: ${direction === "send" ? "cannot send" : "received"} a ${length}-byte message on ` +
        `stream ${streamId}, over the ${limit}-byte limit; keep payloads under ${limit} bytes`,
    );
    this.name = "FrameTooLargeError";
  }
}

function checkU32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new RangeError(`ttrpc: ${name} ${value} is not a u32`);
  }
}

function checkU8(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new RangeError(`ttrpc: ${name} ${value} is not a u8`);
  }
}

/**
 * Encodes one frame: header then payload, in a new buffer.
 *
 * @throws FrameTooLargeError when `payload` exceeds `maxMessageSize` (default 4 MiB).
 * @example
 * ```ts
 * const bytes = encodeFrame(1, MESSAGE_TYPE_REQUEST, 0, new Uint8Array([0xaa]));
 * // bytes = 00 00 00 01 | 00 00 00 01 | 01 | 00 | aa
 * ```
 */
export function encodeFrame(
  streamId: number,
  type: number,
  flags: number,
  payload: Uint8Array,
  maxMessageSize: number = MAX_MESSAGE_SIZE,
): Uint8Array {
  checkU32("stream id", streamId);
  checkU8("message type", type);
  checkU8("flags", flags);
  if (payload.length > maxMessageSize) {
    throw new FrameTooLargeError(payload.length, maxMessageSize, streamId, "send");
  }
  const out = new Uint8Array(FRAME_HEADER_LENGTH + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length);
  view.setUint32(4, streamId);
  out[8] = type;
  out[9] = flags;
  out.set(payload, FRAME_HEADER_LENGTH);
  return out;
}

/** Options of a {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest payload accepted; default {@link MAX_MESSAGE_SIZE}. */
  maxMessageSize?: number;
  /**
   * When true, an oversized frame's payload is skipped and the frame is reported with
   * `oversizedLength` set (what the Go implementation does, so one call fails and the
   * connection survives). When false (default), `push` throws {@link FrameTooLargeError}.
   */
  skipOversized?: boolean;
}

interface Header {
  length: number;
  streamId: number;
  type: number;
  flags: number;
}

/**
 * Reassembles frames from a byte stream chunked in any way.
 *
 * @example
 * ```ts
 * const decoder = new FrameDecoder();
 * for (const frame of decoder.push(chunk)) handle(frame);
 * ```
 */
export class FrameDecoder {
  readonly #maxMessageSize: number;
  readonly #skipOversized: boolean;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #header: Header | null = null;
  #skipRemaining = 0;

  constructor(options: FrameDecoderOptions = {}) {
    this.#maxMessageSize = options.maxMessageSize ?? MAX_MESSAGE_SIZE;
    this.#skipOversized = options.skipOversized ?? false;
  }

  /** Bytes received that do not yet form a whole frame (non-zero at EOF means truncation). */
  get buffered(): number {
    return this.#buffered + (this.#header ? FRAME_HEADER_LENGTH : 0) + this.#skipRemaining;
  }

  /**
   * Feeds bytes; returns the frames they complete, in order.
   *
   * @throws FrameTooLargeError on a header announcing more than the limit (unless skipping).
   */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    for (;;) {
      if (this.#skipRemaining > 0) {
        this.#skipRemaining -= this.#discard(this.#skipRemaining);
        if (this.#skipRemaining > 0) break;
      }
      if (this.#header === null) {
        if (this.#buffered < FRAME_HEADER_LENGTH) break;
        const bytes = this.#take(FRAME_HEADER_LENGTH);
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const header = {
          length: view.getUint32(0),
          streamId: view.getUint32(4),
          type: bytes[8],
          flags: bytes[9],
        };
        if (header.length > this.#maxMessageSize) {
          if (!this.#skipOversized) {
            throw new FrameTooLargeError(
              header.length,
              this.#maxMessageSize,
              header.streamId,
              "receive",
            );
          }
          frames.push({
            streamId: header.streamId,
            type: header.type,
            flags: header.flags,
            payload: new Uint8Array(0),
            oversizedLength: header.length,
          });
          this.#skipRemaining = header.length;
          continue;
        }
        this.#header = header;
      }
      const header: Header = this.#header;
      if (this.#buffered < header.length) break;
      this.#header = null;
      frames.push({
        streamId: header.streamId,
        type: header.type,
        flags: header.flags,
        payload: this.#take(header.length),
      });
    }
    return frames;
  }

  /** Removes and returns exactly `n` buffered bytes (caller checked they are there). */
  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[0];
    if (first.length >= n) {
      // A copy, so a frame never aliases a caller's (possibly reused) chunk buffer.
      const out = first.slice(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#buffered -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0];
      const want = n - filled;
      if (chunk.length <= want) {
        out.set(chunk, filled);
        filled += chunk.length;
        this.#chunks.shift();
      } else {
        out.set(chunk.subarray(0, want), filled);
        filled += want;
        this.#chunks[0] = chunk.subarray(want);
      }
    }
    this.#buffered -= n;
    return out;
  }

  /** Drops up to `n` buffered bytes; returns how many were dropped. */
  #discard(n: number): number {
    let dropped = 0;
    while (dropped < n && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const want = n - dropped;
      if (chunk.length <= want) {
        dropped += chunk.length;
        this.#chunks.shift();
      } else {
        dropped += want;
        this.#chunks[0] = chunk.subarray(want);
      }
    }
    this.#buffered -= dropped;
    return dropped;
  }
}
