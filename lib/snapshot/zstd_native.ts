/**
 * The system's libzstd through Deno FFI: whole-frame compression and decompression run as
 * nonblocking FFI calls, i.e. on Deno's blocking-thread pool, so several frames are (de)compressed
 * at once without worker isolates (each costs ~25 ms of CPU to start and node:zlib's zstd decodes
 * ~1.7× slower than libzstd's).
 *
 * Contract: {@link nativeZstd} returns undefined when no libzstd.so.1 can be loaded (callers fall
 * back to node:zlib). A context (one per concurrent call) must not be shared by two calls in
 * flight, and the buffers passed to a call must stay untouched until it settles. Frames record
 * their content size and an XXH64 checksum, like the node:zlib path's.
 *
 * @module
 */

const CANDIDATES = [
  "libzstd.so.1",
  "/lib/x86_64-linux-gnu/libzstd.so.1",
  "/lib/aarch64-linux-gnu/libzstd.so.1",
];

const SYMBOLS = {
  ZSTD_createCCtx: { parameters: [], result: "pointer" },
  ZSTD_freeCCtx: { parameters: ["pointer"], result: "usize" },
  ZSTD_createDCtx: { parameters: [], result: "pointer" },
  ZSTD_freeDCtx: { parameters: ["pointer"], result: "usize" },
  ZSTD_CCtx_setParameter: { parameters: ["pointer", "i32", "i32"], result: "usize" },
  ZSTD_compressBound: { parameters: ["usize"], result: "usize" },
  ZSTD_compress2: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
    result: "usize",
    nonblocking: true,
  },
  ZSTD_decompressDCtx: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
    result: "usize",
    nonblocking: true,
  },
  ZSTD_isError: { parameters: ["usize"], result: "u32" },
  ZSTD_getErrorName: { parameters: ["usize"], result: "pointer" },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const ZSTD_C_COMPRESSION_LEVEL = 100;
const ZSTD_C_CHECKSUM_FLAG = 201;

/** libzstd's one-shot frame calls, each with its own context. */
export class NativeZstd {
  #lib: Symbols;

  constructor(lib: Symbols) {
    this.#lib = lib;
  }

  /** A compression context at `level` with content checksums; free it with {@link freeCompressor}. */
  compressor(level: number): Deno.PointerObject {
    const ctx = this.#lib.ZSTD_createCCtx();
    if (!ctx) throw new Error("libzstd: cannot allocate a compression context (out of memory)");
    this.#check(this.#lib.ZSTD_CCtx_setParameter(ctx, ZSTD_C_COMPRESSION_LEVEL, level), "level");
    this.#check(this.#lib.ZSTD_CCtx_setParameter(ctx, ZSTD_C_CHECKSUM_FLAG, 1), "checksum");
    return ctx;
  }

  freeCompressor(ctx: Deno.PointerObject): void {
    this.#lib.ZSTD_freeCCtx(ctx);
  }

  /** A decompression context; free it with {@link freeDecompressor}. */
  decompressor(): Deno.PointerObject {
    const ctx = this.#lib.ZSTD_createDCtx();
    if (!ctx) throw new Error("libzstd: cannot allocate a decompression context (out of memory)");
    return ctx;
  }

  freeDecompressor(ctx: Deno.PointerObject): void {
    this.#lib.ZSTD_freeDCtx(ctx);
  }

  /** Largest frame `length` input bytes can compress into. */
  bound(length: number): number {
    return Number(this.#lib.ZSTD_compressBound(BigInt(length)));
  }

  /** Compresses `src` into one frame at the start of `dst` (≥ {@link bound}); returns its length. */
  async compress(
    ctx: Deno.PointerObject,
    src: Uint8Array<ArrayBuffer>,
    dst: Uint8Array<ArrayBuffer>,
  ): Promise<number> {
    const r = await this.#lib.ZSTD_compress2(ctx, dst, BigInt(dst.length), src, BigInt(src.length));
    return this.#check(r, "compression");
  }

  /**
   * Decompresses the whole frame `src` into `dst`; returns the decoded length. Throws when the
   * frame is corrupt (checksum included) or decodes to more than `dst.length` bytes.
   */
  async decompress(
    ctx: Deno.PointerObject,
    src: Uint8Array<ArrayBuffer>,
    dst: Uint8Array<ArrayBuffer>,
  ): Promise<number> {
    const r = await this.#lib.ZSTD_decompressDCtx(
      ctx,
      dst,
      BigInt(dst.length),
      src,
      BigInt(src.length),
    );
    return this.#check(r, "decompression");
  }

  #check(result: number | bigint, what: string): number {
    const code = BigInt(result);
    if (this.#lib.ZSTD_isError(code)) {
      const name = this.#lib.ZSTD_getErrorName(code);
      const message = name ? Deno.UnsafePointerView.getCString(name) : `code ${code}`;
      throw new Error(`zstd ${what} failed: ${message}`);
    }
    return Number(result);
  }
}

let loaded: NativeZstd | null | undefined;

/** libzstd, loaded on first use; undefined when the system has none. */
export function nativeZstd(): NativeZstd | undefined {
  if (loaded === undefined) {
    loaded = null;
    for (const name of CANDIDATES) {
      try {
        loaded = new NativeZstd(Deno.dlopen(name, SYMBOLS).symbols);
        break;
      } catch {
        // try the next name
      }
    }
  }
  return loaded ?? undefined;
}
