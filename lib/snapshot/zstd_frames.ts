/**
 * Splits a zstd stream into its frames without decompressing (RFC 8878 §3.1): the frame header
 * gives the header length and checksum flag, each block header its size and whether it is the
 * last. Skippable frames are dropped. Anything else between frames is an error, and input that
 * stops inside a frame is reported as truncated.
 *
 * Why: node:zlib's zstd decompressor in Deno stops at the end of the first frame of a write and
 * ends silently on truncated input, so the decoder hands it exactly one whole frame at a time and
 * relies on this scanner for truncation and trailing-garbage errors.
 *
 * @module
 */
import { FormatError } from "./format.ts";

const FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

/** A run of bytes belonging to one zstd frame; `first`/`last` mark the frame's edges. */
export interface FrameSegment {
  bytes: Uint8Array;
  first: boolean;
  last: boolean;
}

type State =
  | { at: "magic" }
  | { at: "skippable-size" }
  | { at: "skip"; left: number }
  | { at: "descriptor" }
  | { at: "header-rest"; left: number }
  | { at: "block-header" }
  | { at: "block-body"; left: number; last: boolean }
  | { at: "checksum"; left: number };

/** Incremental frame scanner: {@link push} compressed chunks, {@link finish} at end of input. */
export class FrameScanner {
  #state: State = { at: "magic" };
  #field = new Uint8Array(4);
  #fieldFill = 0;
  #checksum = false;
  #inFrame = false;
  #consumed = 0;
  #frames = 0;

  /** Complete data frames seen so far. */
  get frames(): number {
    return this.#frames;
  }

  /**
   * Returns the segments of data frames found in `chunk` (views into it, except the magic, which
   * opens each frame as its own segment because it may straddle two chunks).
   */
  push(chunk: Uint8Array): FrameSegment[] {
    const out: FrameSegment[] = [];
    let pos = 0;
    let start = this.#inFrame ? 0 : -1;
    while (pos < chunk.length) {
      const s = this.#state;
      if (s.at === "skip" || s.at === "block-body" || s.at === "checksum") {
        const n = Math.min(s.left, chunk.length - pos);
        pos += n;
        s.left -= n;
        if (s.left > 0) continue;
        if (s.at === "skip") this.#state = { at: "magic" };
        else if (s.at === "block-body" && !s.last) this.#state = { at: "block-header" };
        else if (s.at === "block-body" && this.#checksum) this.#state = { at: "checksum", left: 4 };
        else {
          out.push({ bytes: chunk.subarray(start, pos), first: false, last: true });
          start = -1;
          this.#state = this.#endFrame();
        }
        continue;
      }
      if (s.at === "header-rest") {
        const n = Math.min(s.left, chunk.length - pos);
        pos += n;
        s.left -= n;
        if (s.left === 0) this.#state = { at: "block-header" };
        continue;
      }
      const want = s.at === "magic" || s.at === "skippable-size"
        ? 4
        : s.at === "descriptor"
        ? 1
        : 3;
      const n = Math.min(want - this.#fieldFill, chunk.length - pos);
      this.#field.set(chunk.subarray(pos, pos + n), this.#fieldFill);
      this.#fieldFill += n;
      pos += n;
      if (this.#fieldFill < want) break;
      this.#fieldFill = 0;
      const f = this.#field;
      let value = 0;
      for (let i = want - 1; i >= 0; i--) value = value * 256 + f[i];
      const before = this.#inFrame;
      const ended = this.#onField(s.at, value, this.#consumed + pos);
      if (!before && this.#inFrame) {
        out.push({ bytes: this.#field.slice(0, 4), first: true, last: false });
        start = pos;
      } else if (ended) {
        out.push({ bytes: chunk.subarray(start, pos), first: false, last: true });
        start = -1;
      }
    }
    if (this.#inFrame && start >= 0 && pos > start) {
      out.push({ bytes: chunk.subarray(start, pos), first: false, last: false });
    }
    this.#consumed += chunk.length;
    return out;
  }

  /** Handles a completed header field; returns true when it ended the frame. */
  #onField(at: State["at"], value: number, offset: number): boolean {
    const where = `at compressed byte ${offset}`;
    switch (at) {
      case "magic":
        if (value === FRAME_MAGIC) {
          this.#inFrame = true;
          this.#state = { at: "descriptor" };
        } else if ((value & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          this.#state = { at: "skippable-size" };
        } else {
          throw new FormatError(
            this.#frames === 0
              ? `not a zstd stream (bad frame magic 0x${value.toString(16)} ${where})`
              : `trailing garbage after the zstd stream (bad frame magic 0x${
                value.toString(16)
              } after frame ${this.#frames})`,
          );
        }
        return false;
      case "skippable-size":
        this.#state = value === 0 ? { at: "magic" } : { at: "skip", left: value };
        return false;
      case "descriptor": {
        if (value & 0x08) {
          throw new FormatError(`corrupt zstd frame header (reserved bit set ${where})`);
        }
        const fcsFlag = value >> 6;
        const singleSegment = (value >> 5) & 1;
        this.#checksum = ((value >> 2) & 1) === 1;
        const dictIdSize = [0, 1, 2, 4][value & 3];
        const fcsSize = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
        const rest = (singleSegment ? 0 : 1) + dictIdSize + fcsSize;
        this.#state = rest === 0 ? { at: "block-header" } : { at: "header-rest", left: rest };
        return false;
      }
      case "block-header": {
        const last = (value & 1) === 1;
        const type = (value >> 1) & 3;
        const size = value >>> 3;
        if (type === 3) throw new FormatError(`corrupt zstd block (reserved block type ${where})`);
        const body = type === 1 ? 1 : size;
        if (body > 0) this.#state = { at: "block-body", left: body, last };
        else if (!last) this.#state = { at: "block-header" };
        else if (this.#checksum) this.#state = { at: "checksum", left: 4 };
        else {
          this.#state = this.#endFrame();
          return true;
        }
        return false;
      }
      default:
        return false;
    }
  }

  #endFrame(): State {
    this.#inFrame = false;
    this.#frames++;
    return { at: "magic" };
  }

  /** Throws unless the input ended between frames. */
  finish(): void {
    const s = this.#state;
    if (s.at === "magic" && this.#fieldFill === 0) return;
    if (s.at === "skip" || s.at === "skippable-size") {
      throw new FormatError("truncated stream: it ended inside a skippable zstd frame");
    }
    throw new FormatError(
      `truncated stream: the compressed input ended inside zstd frame ${this.#frames + 1}`,
    );
  }
}

/**
 * The decompressed size a zstd frame's header records (RFC 8878 §3.1.1.1), or undefined when the
 * header omits it or `frame` is too short to tell.
 */
export function frameContentSize(frame: Uint8Array): number | undefined {
  if (frame.length < 5) return undefined;
  const descriptor = frame[4];
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const fcsSize = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
  if (fcsSize === 0) return undefined;
  const at = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][descriptor & 3];
  if (frame.length < at + fcsSize) return undefined;
  let size = 0;
  for (let i = fcsSize - 1; i >= 0; i--) size = size * 256 + frame[at + i];
  return fcsSize === 2 ? size + 256 : size;
}
