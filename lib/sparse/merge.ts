/**
 * Merging an OnDemand delta into its base memory image.
 *
 * After an OnDemand restore, cloud-hypervisor's next snapshot (the delta, D) holds only the pages
 * the guest touched; every other page is still the one in the image it restored from (the base,
 * B). The complete image is B with D's data regions laid over it at the same offsets. The two
 * files must have the same size (same guest, same memory layout).
 *
 * {@link mergeDelta} does it in place, in O(delta): it reuses B's blocks instead of copying its
 * working set. Files: B, D, the work file W = `<D>.merging` beside D, and the trash T =
 * `<B>.merge-trash` beside B. Steps, in this order:
 *
 *   1. rename B → W            (metadata only; EXDEV → the copying merge below)
 *   2. overlay D's data regions onto W (idempotent: redoing it gives the same bytes)
 *   3. rename D → T            (from here W is the complete merged image)
 *   4. rename W → D            (D's name is free, so ext4 does not flush W's dirty pages)
 *   5. unlink T in the background ({@link mergeCleanups} waits for it): freeing the delta's
 *      blocks is not on the caller's path, and T is outside D's directory, so listing that
 *      directory shows only D.
 *
 * The copying merge (B and D on different filesystems) replaces step 1 with "sparse-copy B → W,
 * then unlink B" (unlinking B only once W holds all of B) and step 3 with "unlink D", so both
 * strategies share the recovery rule and both consume B.
 *
 * Recovery rule (run by {@link recoverMerge}, and first thing by {@link mergeDelta}):
 *   - B exists: nothing was started or a copy was interrupted: a leftover W is stale; remove it.
 *   - B missing, W and D exist: crashed in step 2 (or right after 1): W is B with a prefix of D's
 *     regions laid over it, which together with D still denotes exactly the merged image; redo
 *     steps 2–4.
 *   - B missing, W exists, D missing: crashed after step 3: W is complete; do step 4.
 *   - otherwise: nothing to recover. In every case a leftover T is removed.
 * So a crash at any point leaves either the old pair (B, D; or W, D in the state above) or the
 * complete merged file, and never a partial file under D's name. Durability across power loss is
 * the caller's: nothing is fsynced (the upload is the durability point). One merge per pair at a
 * time; callers serialise per actor.
 *
 * @module
 */
import { O_RDONLY, O_WRONLY } from "../ffi/libc.ts";
import { copyExtents, layoutOf, sparseCopy, withFd } from "./copy.ts";

/** Points between merge steps; tests stop a merge at each to simulate a crash. */
export type MergeStep =
  | "base-moved"
  | "base-copied"
  | "overlay-chunk"
  | "overlaid"
  | "base-removed"
  | "delta-moved"
  | "delta-removed"
  | "renamed";

/** Test seams: a rename to fail with EXDEV, and a hook run after each step. */
export interface MergeHooks {
  rename?: (from: string, to: string) => Promise<void>;
  afterStep?: (step: MergeStep) => void | Promise<void>;
}

/** What {@link mergeDelta} did. */
export interface MergeResult {
  strategy: "in-place" | "copy";
  /** Bytes of the delta laid over the base. */
  overlaidBytes: number;
  /** True when the call finished a merge a crash had interrupted. */
  recovered: boolean;
}

/** The work file of a merge into `delta`. */
export function workPathOf(delta: string): string {
  return `${delta}.merging`;
}

/** Where the in-place merge puts the old delta before unlinking it (beside the base). */
export function trashPathOf(base: string): string {
  return `${base}.merge-trash`;
}

const pendingRemovals = new Set<Promise<void>>();

function removeLater(path: string): void {
  const removal = Deno.remove(path).catch(() => {}).finally(() => pendingRemovals.delete(removal));
  pendingRemovals.add(removal);
}

/** Settles when every old delta the in-place merges of this process put aside is unlinked. */
export async function mergeCleanups(): Promise<void> {
  while (pendingRemovals.size > 0) await Promise.all(pendingRemovals);
}

// The merge's metadata calls are synchronous: each is a few microseconds in the kernel, while an
// async op costs a hop to Deno's blocking thread pool and back, which dominated the in-place merge.

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** rename(2) done synchronously, shaped like the {@link MergeHooks} seam. */
function renameNow(from: string, to: string): Promise<void> {
  try {
    Deno.renameSync(from, to);
    return Promise.resolve();
  } catch (e) {
    return Promise.reject(e);
  }
}

function isExdev(e: unknown): boolean {
  return (e as { code?: string })?.code === "EXDEV";
}

function sizeOrThrow(path: string, role: string, context: string): number {
  try {
    return Deno.statSync(path).size;
  } catch (e) {
    throw new Error(`${context}: cannot stat ${role} ${path}: ${(e as Error).message}`);
  }
}

/**
 * Steps 2–4 on an existing work file; `retire` takes the old delta off its name (step 3).
 * Returns the bytes overlaid.
 */
async function finishFromWork(
  work: string,
  delta: string,
  context: string,
  hooks: MergeHooks,
  rename: (from: string, to: string) => Promise<void>,
  retire: () => Promise<void>,
): Promise<number> {
  let overlaid = 0;
  if (exists(delta)) {
    const workSize = sizeOrThrow(work, "work file", context);
    const { size, extents } = layoutOf(delta);
    if (size !== workSize) {
      throw new Error(
        `${context}: size mismatch (work file ${workSize} bytes, delta ${size} bytes); ` +
          `remove ${work} and retry with the matching base`,
      );
    }
    overlaid = await withFd(delta, O_RDONLY, (src) =>
      withFd(
        work,
        O_WRONLY,
        (dst) =>
          copyExtents(src, dst, extents, {
            onChunk: () => hooks.afterStep?.("overlay-chunk"),
          }),
      ));
    await hooks.afterStep?.("overlaid");
    await retire();
  }
  await rename(work, delta);
  await hooks.afterStep?.("renamed");
  return overlaid;
}

/**
 * Finishes or cleans up a merge of `delta` into `base` that a crash interrupted, following the
 * recovery rule in the module comment. Returns true when it completed an interrupted merge.
 */
export async function recoverMerge(
  base: string,
  delta: string,
  hooks: MergeHooks = {},
): Promise<boolean> {
  const work = workPathOf(delta);
  const trash = trashPathOf(base);
  if (exists(trash)) Deno.removeSync(trash);
  if (!(exists(work))) return false;
  if (exists(base)) {
    Deno.removeSync(work);
    return false;
  }
  const rename = hooks.rename ?? renameNow;
  await finishFromWork(work, delta, `recover merge into ${delta}`, hooks, rename, async () => {
    Deno.removeSync(delta);
    await hooks.afterStep?.("delta-removed");
  });
  return true;
}

/**
 * Merges the OnDemand `delta` into `base` and leaves the complete image at `delta`'s path;
 * `base` is consumed. In place when both are on one filesystem, by copying otherwise (see the
 * module comment for the steps and the crash recovery rule). A size mismatch is an error that
 * changes neither file.
 */
export async function mergeDelta(
  base: string,
  delta: string,
  hooks: MergeHooks = {},
): Promise<MergeResult> {
  const context = `merge delta ${delta} into base ${base}`;
  const rename = hooks.rename ?? renameNow;
  if (await recoverMerge(base, delta, hooks)) {
    return { strategy: "in-place", overlaidBytes: 0, recovered: true };
  }
  const baseSize = sizeOrThrow(base, "base", context);
  const deltaSize = sizeOrThrow(delta, "delta", context);
  if (baseSize !== deltaSize) {
    throw new Error(
      `${context}: size mismatch (base ${baseSize} bytes, delta ${deltaSize} bytes); ` +
        `both left unchanged: the delta must come from a restore of this base`,
    );
  }
  const work = workPathOf(delta);
  const trash = trashPathOf(base);
  let strategy: MergeResult["strategy"] = "in-place";
  try {
    await rename(base, work);
    await hooks.afterStep?.("base-moved");
  } catch (e) {
    if (!isExdev(e)) throw new Error(`${context}: moving the base beside the delta: ${e}`);
    strategy = "copy";
    await sparseCopy(base, work);
    await hooks.afterStep?.("base-copied");
    await Deno.remove(base);
    await hooks.afterStep?.("base-removed");
  }
  let trashed = false;
  const retire = strategy === "in-place"
    ? async () => {
      await rename(delta, trash);
      trashed = true;
      await hooks.afterStep?.("delta-moved");
    }
    : async () => {
      await Deno.remove(delta);
      await hooks.afterStep?.("delta-removed");
    };
  try {
    const overlaidBytes = await finishFromWork(work, delta, context, hooks, rename, retire);
    return { strategy, overlaidBytes, recovered: false };
  } finally {
    // Step 5, started only now: an unlink running beside step 4 competes with its rename.
    if (trashed) removeLater(trash);
  }
}

/**
 * The copying merge on its own: writes base-with-delta-overlaid to a new file `out` and leaves
 * `base` and `delta` untouched. O(base working set); the reference the in-place merge is measured
 * against, and useful when the base must survive.
 */
export async function mergeByCopy(base: string, delta: string, out: string): Promise<number> {
  const context = `merge delta ${delta} into a copy of base ${base}`;
  const baseSize = sizeOrThrow(base, "base", context);
  const { size, extents } = layoutOf(delta);
  if (size !== baseSize) {
    throw new Error(
      `${context}: size mismatch (base ${baseSize} bytes, delta ${size} bytes); nothing written`,
    );
  }
  const tmp = `${out}.tmp-${Deno.pid}`;
  await Deno.remove(tmp).catch(() => {});
  try {
    await sparseCopy(base, tmp);
    const overlaid = await withFd(
      delta,
      O_RDONLY,
      (src) => withFd(tmp, O_WRONLY, (dst) => copyExtents(src, dst, extents)),
    );
    await Deno.rename(tmp, out);
    return overlaid;
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
