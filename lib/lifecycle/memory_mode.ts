/**
 * How a restore loads guest memory and what the next checkpoint must do about it, from the VMM's
 * major version (vmm.ping) and the `--memory-restore-mode` flag. Pure.
 *
 * - OnDemand on CH ≤ 52: the VM demand-pages from the restore source and the next snapshot holds
 *   only the pages touched since: the checkpoint merges that delta onto the source ("merge").
 * - OnDemand on CH ≥ 53: CH fills memory in the background and refuses to snapshot until done:
 *   the checkpoint retries until it is accepted ("wait").
 * - Copy: memory is read in full at restore; snapshots are complete ("none").
 *
 * @module
 */
import type { MemoryRestoreMode } from "../ch/types.ts";

/** The `--memory-restore-mode` values. */
export type MemoryModeFlag = "auto" | "ondemand" | "copy";

export const MEMORY_MODE_FLAGS: readonly MemoryModeFlag[] = ["auto", "ondemand", "copy"];

/** What the checkpoint after this restore does to get a complete memory image. */
export type CheckpointMemoryWork = "merge" | "wait" | "none";

export interface MemoryPlan {
  mode: MemoryRestoreMode;
  atCheckpoint: CheckpointMemoryWork;
}

/** Parses a `--memory-restore-mode` value. */
export function parseMemoryModeFlag(text: string): MemoryModeFlag {
  const lower = text.trim().toLowerCase();
  if ((MEMORY_MODE_FLAGS as readonly string[]).includes(lower)) return lower as MemoryModeFlag;
  throw new Error(
    `invalid --memory-restore-mode ${JSON.stringify(text)}: use auto, ondemand or copy`,
  );
}

/** The plan for a VMM of major version `major` under `flag` ("auto" and "ondemand" agree). */
export function memoryPlan(major: number, flag: MemoryModeFlag = "auto"): MemoryPlan {
  if (flag === "copy") return { mode: "Copy", atCheckpoint: "none" };
  return { mode: "OnDemand", atCheckpoint: major <= 52 ? "merge" : "wait" };
}
