/**
 * Module workers built from source text (the compiled binary then needs no extra module files),
 * shared by the node:zlib compression and decompression pools.
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

/** At most `n` holders of one of `n` resources at a time; others wait in order. */
export class Slots<T> {
  #free: T[];
  #waiting: ((slot: T) => void)[] = [];

  constructor(slots: T[]) {
    this.#free = [...slots];
  }

  acquire(): Promise<T> {
    const slot = this.#free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(slot: T): void {
    const next = this.#waiting.shift();
    if (next) next(slot);
    else this.#free.push(slot);
  }
}
