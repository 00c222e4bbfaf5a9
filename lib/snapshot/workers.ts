/**
 * Threading helpers shared by the compression and decompression pools: module workers built from
 * source text (the compiled binary then needs no extra module files) with their call bookkeeping
 * for the node:zlib backend, a pool of native contexts for the libzstd backend, and recycled
 * buffers.
 *
 * @module
 */

/** A running set of workers; {@link stop} terminates them all. */
export interface WorkerSet {
  readonly workers: Worker[];
  stop(): void;
}

/**
 * Starts `count` workers running `source`. Each message goes to `onMessage`; a worker that crashes
 * calls `onFailure` with a one-line error naming `role` (e.g. "compression").
 */
export function startWorkers(
  source: string,
  count: number,
  role: string,
  onMessage: (data: never) => void,
  onFailure: (error: Error) => void,
): WorkerSet {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const workers: Worker[] = [];
  for (let i = 0; i < count; i++) {
    const worker = new Worker(url, { type: "module" });
    worker.onmessage = (event) => onMessage(event.data as never);
    worker.onerror = (event) => {
      event.preventDefault();
      onFailure(new Error(`${role} worker failed: ${event.message}`));
    };
    workers.push(worker);
  }
  return {
    workers,
    stop() {
      for (const worker of workers) worker.terminate();
      workers.length = 0;
      URL.revokeObjectURL(url);
    },
  };
}

/**
 * Calls in flight, keyed by id, settled by a worker's message or all at once on failure: the
 * bookkeeping both pools share.
 */
export class Jobs<T> {
  #jobs = new Map<number, { resolve(value: T): void; reject(error: Error): void }>();
  #nextId = 0;

  /** Registers a call; `send` posts it with its id. */
  start(send: (id: number) => void): Promise<T> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject });
      send(id);
    });
  }

  /** Settles call `id` (ignored when unknown, e.g. after {@link failAll}). */
  settle(id: number, result: { value: T } | { error: Error }): void {
    const job = this.#jobs.get(id);
    if (!job) return;
    this.#jobs.delete(id);
    if ("error" in result) job.reject(result.error);
    else job.resolve(result.value);
  }

  failAll(error: Error): void {
    for (const job of this.#jobs.values()) job.reject(error);
    this.#jobs.clear();
  }
}

/**
 * A fixed set of native contexts, one per call in flight: {@link use} waits for a free one.
 * {@link close} disposes of idle contexts at once and of busy ones when their call returns.
 */
export class ContextPool<T> {
  #free: T[];
  #waiting: ((ctx: T) => void)[] = [];
  #closed = false;

  constructor(contexts: T[], readonly dispose: (ctx: T) => void) {
    this.#free = [...contexts];
  }

  /** Runs `fn` with a context of its own. */
  async use<R>(fn: (ctx: T) => Promise<R>): Promise<R> {
    if (this.#closed) throw new Error("the pool is closed");
    const ctx = this.#free.pop() ?? await new Promise<T>((resolve) => this.#waiting.push(resolve));
    try {
      return await fn(ctx);
    } finally {
      const next = this.#waiting.shift();
      if (this.#closed) this.dispose(ctx);
      else if (next) next(ctx);
      else this.#free.push(ctx);
    }
  }

  close(): void {
    this.#closed = true;
    for (const ctx of this.#free) this.dispose(ctx);
    this.#free = [];
  }
}

const ROUND = 1 << 20;

/**
 * Recycles large buffers: fresh ones cost a page fault per 4 KiB on first touch (~60 ms of CPU
 * per 150 MiB), so (de)compression buffers are reused. Keeps at most `keep` spare buffers.
 */
export class BufferPool {
  #spare: ArrayBuffer[] = [];

  constructor(readonly keep: number) {}

  /**
   * A view of `size` bytes on a spare buffer large enough, or on a new one rounded up to a whole
   * MiB so buffers for similar sizes (compressed frames) are interchangeable.
   */
  get(size: number): Uint8Array<ArrayBuffer> {
    const i = this.#spare.findIndex((b) => b.byteLength >= size);
    const buffer = i >= 0
      ? this.#spare.splice(i, 1)[0]
      : new ArrayBuffer(Math.ceil(size / ROUND) * ROUND);
    return new Uint8Array(buffer, 0, size);
  }

  /** Hands `bytes`' buffer back; nothing may use `bytes` afterwards. */
  put(bytes: Uint8Array): void {
    const buffer = bytes.buffer as ArrayBuffer;
    if (buffer.byteLength === 0 || this.#spare.includes(buffer)) return;
    this.#spare.push(buffer);
    if (this.#spare.length > this.keep) {
      // Drop the smallest; free it now rather than at V8's next GC.
      this.#spare.sort((a, b) => b.byteLength - a.byteLength);
      detach(new Uint8Array(this.#spare.pop()!));
    }
  }
}

/**
 * Frees `bytes`' buffer now. V8 collects large external buffers (e.g. transferred from a worker)
 * lazily and does not count them as memory pressure, so hundreds of MB could pile up before a GC.
 */
export function detach(bytes: Uint8Array): void {
  (bytes.buffer as ArrayBuffer & { transfer?: (n: number) => unknown }).transfer?.(0);
}
