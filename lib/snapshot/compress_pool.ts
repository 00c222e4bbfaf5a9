/**
 * Compresses independent chunks into zstd frames on worker threads (Deno's node:zlib runs its
 * async calls on the calling thread, so workers are the only way to use more than one core).
 * Each chunk becomes one self-contained frame with a content checksum; results come back in
 * submission order. The chunk's buffer is transferred to the worker and handed back with the
 * result so callers can reuse it.
 *
 * The worker is built from a string so the compiled binary needs no extra module files.
 *
 * @module
 */
import { constants, zstdCompressSync } from "node:zlib";

/** zstd level used for snapshots: fast, like upstream's SpeedFastest. */
export const ZSTD_LEVEL = 1;

const ZSTD_PARAMS = {
  params: {
    [constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL,
    [constants.ZSTD_c_checksumFlag]: 1,
  },
};

/** Compresses one chunk on the calling thread (the pool's fallback and the tests' reference). */
export function compressFrame(chunk: Uint8Array): Uint8Array {
  return zstdCompressSync(chunk, ZSTD_PARAMS);
}

const WORKER_SOURCE = `
import { constants, zstdCompressSync } from "node:zlib";
const options = { params: {
  [constants.ZSTD_c_compressionLevel]: ${ZSTD_LEVEL},
  [constants.ZSTD_c_checksumFlag]: 1,
} };
self.onmessage = (event) => {
  const { id, buffer, length } = event.data;
  try {
    const frame = zstdCompressSync(new Uint8Array(buffer, 0, length), { ...options, chunkSize: length + (length >> 7) + 65536 });
    self.postMessage({ id, buffer, frame }, [buffer, frame.buffer]);
  } catch (e) {
    self.postMessage({ id, buffer, error: String(e && e.message || e) }, [buffer]);
  }
};
`;

interface Job {
  resolve(result: { frame: Uint8Array; buffer: ArrayBuffer }): void;
  reject(error: Error): void;
}

/** Default worker count: every core. */
export function defaultWorkers(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

/** A fixed set of compression workers; `workers: 0` compresses on the calling thread. */
export class CompressPool {
  #workers: Worker[] = [];
  #jobs = new Map<number, Job>();
  #nextId = 0;
  #url?: string;

  constructor(workers = defaultWorkers()) {
    if (workers <= 0) return;
    this.#url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(this.#url, { type: "module" });
      worker.onmessage = (event) => this.#settle(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        this.#failAll(new Error(`compression worker failed: ${event.message}`));
      };
      this.#workers.push(worker);
    }
  }

  /** True when frames arrive in buffers of their own (from workers), which callers may detach. */
  get transfers(): boolean {
    return this.#workers.length > 0;
  }

  /** How many chunks may usefully be in flight. */
  get parallelism(): number {
    return Math.max(1, this.#workers.length);
  }

  /**
   * Compresses `buffer[0, length)` into one frame. The buffer is detached until the promise
   * settles; the result returns it (or an equivalent) for reuse.
   */
  compress(
    buffer: ArrayBuffer,
    length: number,
  ): Promise<{ frame: Uint8Array; buffer: ArrayBuffer }> {
    if (this.#workers.length === 0) {
      return Promise.resolve({ frame: compressFrame(new Uint8Array(buffer, 0, length)), buffer });
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject });
      this.#workers[id % this.#workers.length].postMessage({ id, buffer, length }, [buffer]);
    });
  }

  #settle(data: { id: number; buffer: ArrayBuffer; frame?: Uint8Array; error?: string }): void {
    const job = this.#jobs.get(data.id);
    if (!job) return;
    this.#jobs.delete(data.id);
    if (data.error !== undefined) job.reject(new Error(`zstd compression failed: ${data.error}`));
    else job.resolve({ frame: data.frame!, buffer: data.buffer });
  }

  #failAll(error: Error): void {
    for (const job of this.#jobs.values()) job.reject(error);
    this.#jobs.clear();
  }

  /** Stops the workers; pending jobs are rejected. */
  close(): void {
    for (const worker of this.#workers) worker.terminate();
    this.#workers = [];
    this.#failAll(new Error("compression pool closed"));
    if (this.#url) URL.revokeObjectURL(this.#url);
  }
}
