/**
 * An unwind stack: each step of an activation registers how to undo what it created; a failure
 * (or an abort) runs every registered undo in reverse order, and success discards them.
 *
 * Contract: {@link Unwind.unwind} runs every undo even when some fail, never throws, and returns
 * the failures (one line each) so the caller can log them next to the original error.
 *
 * @module
 */

/** One registered undo. */
interface Undo {
  what: string;
  run: () => unknown | Promise<unknown>;
}

/** A stack of undos for one activation. */
export class Unwind {
  #undos: Undo[] = [];

  /** Registers `run` to undo `what` (a short noun phrase for logs: "VMM process"). */
  push(what: string, run: () => unknown | Promise<unknown>): void {
    this.#undos.push({ what, run });
  }

  /** Number of undos registered. */
  get size(): number {
    return this.#undos.length;
  }

  /** Forgets every undo: the activation succeeded and now owns what was created. */
  commit(): void {
    this.#undos = [];
  }

  /** Runs every undo, last registered first; returns the failures as one-line messages. */
  async unwind(): Promise<string[]> {
    const failures: string[] = [];
    while (this.#undos.length > 0) {
      const undo = this.#undos.pop()!;
      try {
        await undo.run();
      } catch (e) {
        failures.push(`undoing ${undo.what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return failures;
  }
}
