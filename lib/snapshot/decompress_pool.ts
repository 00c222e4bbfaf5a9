/**
 * Decompresses whole zstd frames on several threads, so decoding uses more than one core: the
 * system's libzstd through nonblocking FFI calls, or node:zlib on worker isolates when there is
 * none (see compress_pool.ts). Only frames whose header records a content size of at most
 * `maxOutput` are taken; any other frame is refused (`null`) and the caller decompresses it as a
 * stream instead, which keeps memory bounded for frames from other encoders.
 *
 * @module
 */
import type { ZstdBackend } from "./compress_pool.ts";
import { frameContentSize } from "./zstd_frames.ts";
import { type NativeZstd, nativeZstd } from "./zstd_native.ts";
import { BufferPool, ContextPool, detach, Jobs, startWorkers, type WorkerSet } from "./workers.ts";

const WORKER_SOURCE = `
import { zstdDecompressSync } from "node:zlib";
self.onmessage = (event) => {
  const { id, frame, size } = event.data;
  try {
    let out = zstdDecompressSync(frame, { chunkSize: Math.max(size, 64), maxOutputLength: size });
    if (out.length !== size) throw new Error("the frame decoded to " + out.length + " bytes, its header says " + size);
    // A view on a shared or larger buffer is copied so the transfer moves only this output.
    if (out.byteOffset !== 0 || out.buffer.byteLength !== size) out = new Uint8Array(out);
    self.postMessage({ id, out }, [out.buffer]);
  } catch (e) {
    self.postMessage({ id, error: String(e && e.message || e) });
  }
};
`;

/** A fixed set of decompression threads. */
export class DecompressPool {
  #native?: NativeZstd;
  #contexts?: ContextPool<Deno.PointerObject>;
  #workers?: WorkerSet;
  #jobs = new Jobs<Uint8Array>();
  #outputs: BufferPool;
  #closed = false;

  constructor(readonly size: number, readonly maxOutput: number, backend: ZstdBackend = "auto") {
    const native = this.#native = backend === "auto" ? nativeZstd() : undefined;
    this.#outputs = new BufferPool(2 * size + 2);
    if (native) {
      this.#contexts = new ContextPool(
        Array.from({ length: size }, () => native.decompressor()),
        (ctx) => native.freeDecompressor(ctx),
      );
      return;
    }
    this.#workers = startWorkers(
      WORKER_SOURCE,
      size,
      "decompression",
      (data: { id: number; out?: Uint8Array; error?: string }) =>
        this.#jobs.settle(
          data.id,
          data.error === undefined ? { value: data.out! } : { error: new Error(data.error) },
        ),
      (error) => this.#jobs.failAll(error),
    );
  }

  /**
   * Decompresses one whole frame (the caller keeps it, e.g. for a fallback); resolves null when its
   * header does not record a content size from 1 to `maxOutput`.
   */
  decompress(frame: Uint8Array<ArrayBuffer>): Promise<Uint8Array | null> {
    if (this.#closed) return Promise.reject(new Error("decompression pool closed"));
    const size = frameContentSize(frame);
    if (!size || size > this.maxOutput) return Promise.resolve(null);
    if (this.#native) return this.#decompressNative(this.#native, frame, size);
    const workers = this.#workers!.workers;
    return this.#jobs.start((id) => workers[id % workers.length].postMessage({ id, frame, size }));
  }

  #decompressNative(
    native: NativeZstd,
    frame: Uint8Array<ArrayBuffer>,
    size: number,
  ): Promise<Uint8Array> {
    return this.#contexts!.use(async (ctx) => {
      const out = this.#outputs.get(size);
      const n = await native.decompress(ctx, frame, out);
      if (n !== size) {
        throw new Error(`the frame decoded to ${n} bytes, its header says ${size}`);
      }
      return out;
    });
  }

  /** Takes back an output of {@link decompress} that nothing will read again. */
  recycle(out: Uint8Array): void {
    if (this.#native) this.#outputs.put(out);
    else detach(out);
  }

  /** Stops the threads; pending calls are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#contexts?.close();
    this.#workers?.stop();
    this.#jobs.failAll(new Error("decompression pool closed"));
  }
}
