/**
 * Runs tasks one at a time, in arrival order (the worker serialises its RPCs like upstream). A
 * task whose signal aborts while it waits its turn is dropped without running.
 *
 * @module
 */

export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #running = 0;

  /** Number of tasks queued or running. */
  get pending(): number {
    return this.#running;
  }

  /** Runs `task` after every earlier task settled; rejects with `signal.reason` if it aborts first. */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.#running++;
    const previous = this.#tail;
    const result = (async () => {
      try {
        await waitOrAbort(previous, signal);
        signal?.throwIfAborted();
        return await task();
      } finally {
        this.#running--;
      }
    })();
    // The next task waits for this one's task to settle, not for its own abort.
    this.#tail = previous.then(() => result).catch(() => {});
    return result;
  }

  /** Resolves when every task queued so far has settled. */
  idle(): Promise<void> {
    return this.#tail.then(() => {});
  }
}

function waitOrAbort(p: Promise<unknown>, signal?: AbortSignal): Promise<void> {
  const settled = p.then(() => {}, () => {});
  if (!signal) return settled;
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    settled.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
