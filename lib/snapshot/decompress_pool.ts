/**
 * Decompresses whole small zstd frames on worker threads, so decoding uses more than one core.
 * A frame whose output would exceed `maxOutput` is refused (`null`) and the caller decompresses it
 * as a stream instead, which keeps memory bounded for frames from other encoders.
 *
 * @module
 */

const WORKER_SOURCE = `
import { createZstdDecompress } from "node:zlib";
self.onmessage = (event) => {
  const { id, frame, maxOutput } = event.data;
  const d = createZstdDecompress({ chunkSize: 1 << 20 });
  const chunks = [];
  let size = 0;
  let done = false;
  const finish = (message, transfer) => {
    if (done) return;
    done = true;
    self.postMessage(message, transfer);
  };
  d.on("data", (chunk) => {
    size += chunk.length;
    if (size > maxOutput) {
      finish({ id, tooLarge: true }, []);
      d.destroy();
      return;
    }
    chunks.push(chunk);
  });
  d.on("error", (e) => finish({ id, error: String(e && e.message || e) }, []));
  d.on("end", () => {
    const out = new Uint8Array(size);
    let pos = 0;
    for (const c of chunks) {
      out.set(c, pos);
      pos += c.length;
    }
    finish({ id, out }, [out.buffer]);
    // Free the input copy and the output chunks now rather than at this isolate's next GC.
    const seen = new Set([frame.buffer]);
    for (const c of chunks) seen.add(c.buffer);
    for (const b of seen) if (b.transfer && !b.detached) b.transfer(0);
  });
  d.end(frame);
};
`;

interface Job {
  resolve(out: Uint8Array | null): void;
  reject(error: Error): void;
}

/** A fixed set of decompression workers. */
export class DecompressPool {
  #workers: Worker[] = [];
  #jobs = new Map<number, Job>();
  #nextId = 0;
  #url: string;

  constructor(workers: number, readonly maxOutput: number) {
    this.#url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(this.#url, { type: "module" });
      worker.onmessage = (event) => this.#settle(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        this.#failAll(new Error(`decompression worker failed: ${event.message}`));
      };
      this.#workers.push(worker);
    }
  }

  get size(): number {
    return this.#workers.length;
  }

  /**
   * Decompresses one whole frame (copied to the worker, so the caller keeps it for a fallback);
   * resolves null when the output would exceed `maxOutput`.
   */
  decompress(frame: Uint8Array): Promise<Uint8Array | null> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject });
      this.#workers[id % this.#workers.length].postMessage({
        id,
        frame,
        maxOutput: this.maxOutput,
      });
    });
  }

  #settle(data: { id: number; out?: Uint8Array; tooLarge?: boolean; error?: string }): void {
    const job = this.#jobs.get(data.id);
    if (!job) return;
    this.#jobs.delete(data.id);
    if (data.error !== undefined) job.reject(new Error(data.error));
    else job.resolve(data.tooLarge ? null : data.out!);
  }

  #failAll(error: Error): void {
    for (const job of this.#jobs.values()) job.reject(error);
    this.#jobs.clear();
  }

  close(): void {
    for (const worker of this.#workers) worker.terminate();
    this.#workers = [];
    this.#failAll(new Error("decompression pool closed"));
    URL.revokeObjectURL(this.#url);
  }
}
