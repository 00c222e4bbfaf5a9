/**
 * Compresses independent chunks into zstd frames on several threads. Each chunk becomes one
 * self-contained frame recording its content size and a content checksum; results come back in
 * submission order of completion per call (callers await each call).
 *
 * Two backends: the system's libzstd through nonblocking FFI calls (see zstd_native.ts), or, when
 * there is none, node:zlib on worker isolates (Deno runs node:zlib's async calls on the calling
 * thread, so workers are its only way to use more than one core). A chunk's buffer is handed back
 * with the result so callers can reuse it.
 *
 * @module
 */
import { type NativeZstd, nativeZstd } from "./zstd_native.ts";
import { BufferPool, ContextPool, detach, Jobs, startWorkers, type WorkerSet } from "./workers.ts";

/** zstd level used for snapshots: fast, like upstream's SpeedFastest and `zstd -1`. */
export const ZSTD_LEVEL = 1;

/**
 * zstd parameters by number (ZSTD_c_compressionLevel = 100, ZSTD_c_checksumFlag = 201, as in
 * zstd.h and node:zlib's constants): node:zlib is imported only when used, which keeps ~20 ms
 * off the start of pack and unpack.
 */
const ZSTD_PARAMS = { 100: ZSTD_LEVEL, 201: 1 };

/** Compresses one chunk on the calling thread with node:zlib (fallback and tests' reference). */
export async function compressFrame(chunk: Uint8Array): Promise<Uint8Array> {
  const { zstdCompressSync } = await import("node:zlib");
  return zstdCompressSync(
    chunk,
    {
      params: ZSTD_PARAMS,
      pledgedSrcSize: chunk.length,
      chunkSize: chunk.length + (chunk.length >> 7) + 65536,
    } as Parameters<typeof zstdCompressSync>[1],
  );
}

const WORKER_SOURCE = `
import { zstdCompressSync } from "node:zlib";
const params = ${JSON.stringify(ZSTD_PARAMS)};
self.onmessage = (event) => {
  const { id, buffer, length } = event.data;
  try {
    const frame = zstdCompressSync(new Uint8Array(buffer, 0, length),
      { params, pledgedSrcSize: length, chunkSize: length + (length >> 7) + 65536 });
    self.postMessage({ id, buffer, frame }, [buffer, frame.buffer]);
  } catch (e) {
    self.postMessage({ id, buffer, error: String(e && e.message || e) }, [buffer]);
  }
};
`;

/** Default thread count: every core. */
export function defaultWorkers(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

/** Which zstd implementation a pool uses: libzstd when present (`auto`), or node:zlib. */
export type ZstdBackend = "auto" | "node";

/** A compressed chunk and the buffer it came from. */
export interface CompressResult {
  frame: Uint8Array;
  buffer: ArrayBuffer;
  /** Hands the frame's memory back (reused or freed now); call once nothing reads `frame`. */
  release(): void;
}

/** A fixed set of compression threads; `threads: 0` compresses on the calling thread. */
export class CompressPool {
  #native?: NativeZstd;
  #contexts?: ContextPool<Deno.PointerObject>;
  #frames: BufferPool;
  #workers?: WorkerSet;
  #jobs = new Jobs<CompressResult>();
  #closed = false;
  readonly parallelism: number;

  constructor(threads = defaultWorkers(), backend: ZstdBackend = "auto") {
    this.parallelism = Math.max(1, threads);
    this.#frames = new BufferPool(3 * this.parallelism);
    if (threads <= 0) return;
    const native = this.#native = backend === "auto" ? nativeZstd() : undefined;
    if (native) {
      this.#contexts = new ContextPool(
        Array.from({ length: threads }, () => native.compressor(ZSTD_LEVEL)),
        (ctx) => native.freeCompressor(ctx),
      );
      return;
    }
    this.#workers = startWorkers(
      WORKER_SOURCE,
      threads,
      "compression",
      (data: { id: number; buffer: ArrayBuffer; frame?: Uint8Array; error?: string }) =>
        this.#jobs.settle(
          data.id,
          data.error === undefined
            ? {
              value: {
                frame: data.frame!,
                buffer: data.buffer,
                release: () => detach(data.frame!),
              },
            }
            : { error: new Error(`zstd compression failed: ${data.error}`) },
        ),
      (error) => this.#jobs.failAll(error),
    );
  }

  /**
   * Compresses `buffer[0, length)` into one frame. The buffer must stay untouched until the
   * promise settles; the result returns it (or an equivalent) for reuse.
   */
  compress(buffer: ArrayBuffer, length: number): Promise<CompressResult> {
    if (this.#closed) return Promise.reject(new Error("compression pool closed"));
    const chunk = new Uint8Array(buffer, 0, length);
    if (this.#native) return this.#compressNative(this.#native, chunk);
    const workers = this.#workers?.workers;
    if (!workers) return compressFrame(chunk).then((frame) => ({ frame, buffer, release() {} }));
    return this.#jobs.start((id) =>
      workers[id % workers.length].postMessage({ id, buffer, length }, [buffer])
    );
  }

  #compressNative(native: NativeZstd, chunk: Uint8Array<ArrayBuffer>): Promise<CompressResult> {
    return this.#contexts!.use(async (ctx) => {
      const out = this.#frames.get(native.bound(chunk.length));
      const n = await native.compress(ctx, chunk, out);
      if (this.#closed) throw new Error("compression pool closed");
      const frame = out.subarray(0, n);
      return { frame, buffer: chunk.buffer, release: () => this.#frames.put(frame) };
    });
  }

  /** Stops the threads; pending calls are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#contexts?.close();
    this.#workers?.stop();
    this.#jobs.failAll(new Error("compression pool closed"));
  }
}
