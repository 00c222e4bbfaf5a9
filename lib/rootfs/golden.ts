/**
 * The golden rootfs template: a verbatim sparse copy of the actor's disk taken at its first
 * checkpoint, so every restore starts from exactly the disk the snapshot's guest has cached
 * (later writes by the actor are discarded).
 *
 * Contract: both operations write a temp file beside the destination and rename it, so the
 * destination is always either absent/old or a complete copy; holes stay holes.
 *
 * @module
 */
import { sparseCopyReplace } from "../sparse/copy.ts";

/**
 * Saves `disk` as the golden template `golden` unless one exists. Returns true when it saved,
 * false when a template was already there (it is never overwritten).
 */
export async function saveGolden(disk: string, golden: string): Promise<boolean> {
  try {
    await Deno.lstat(golden);
    return false;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  try {
    await sparseCopyReplace(disk, golden);
  } catch (e) {
    throw new Error(`saving golden rootfs ${golden} from ${disk}: ${(e as Error).message}`);
  }
  return true;
}

/** Replaces `disk` with a copy of the golden template `golden` (atomic rename). */
export async function resetFromGolden(golden: string, disk: string): Promise<void> {
  try {
    await sparseCopyReplace(golden, disk);
  } catch (e) {
    throw new Error(`resetting rootfs ${disk} from golden ${golden}: ${(e as Error).message}`);
  }
}
