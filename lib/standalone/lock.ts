/**
 * One command at a time per actor: `run`, `checkpoint`, `restore` and `rm` hold
 * `<state dir>/standalone/.<NAME>.lock` (created exclusively, holding the holder's pid and start
 * time) while they change the actor. A lock whose holder is gone is taken over.
 *
 * @module
 */
import { join } from "node:path";
import { isAlive } from "./proc.ts";
import { readStat } from "../ffi/procfs.ts";

/** Another command holds the actor. */
export class LockedError extends Error {
  constructor(name: string, pid: number) {
    super(
      `another ateom-microvm command (pid ${pid}) is working on ${name}: wait for it to finish`,
    );
    this.name = "LockedError";
  }
}

/** The lock file of `name` under the `standalone` dir `dir`. */
export function lockPath(dir: string, name: string): string {
  return join(dir, `.${name}.lock`);
}

/** Runs `fn` holding the lock of `name`; throws {@link LockedError} when another holds it. */
export async function withActorLock<T>(
  dir: string,
  name: string,
  fn: () => Promise<T>,
): Promise<T> {
  const path = await acquire(dir, name);
  try {
    return await fn();
  } finally {
    await Deno.remove(path).catch(() => {});
  }
}

async function acquire(dir: string, name: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const path = lockPath(dir, name);
  const me = await readStat(Deno.pid);
  const content = JSON.stringify({ pid: Deno.pid, startTicks: me?.startTicks ?? 0 });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await Deno.writeTextFile(path, content, { createNew: true, mode: 0o600 });
      return path;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    let holder: { pid: number; startTicks: number } | undefined;
    try {
      holder = JSON.parse(await Deno.readTextFile(path));
    } catch { /* half-written or gone: treated as stale */ }
    if (holder && await isAlive(holder.pid, holder.startTicks)) {
      throw new LockedError(name, holder.pid);
    }
    await Deno.remove(path).catch(() => {});
  }
  throw new Error(`cannot lock ${name}: ${path} keeps reappearing; try again`);
}
