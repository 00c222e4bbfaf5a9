/**
 * The rootfs build's progress as worker log lines, so a client that only sees the worker's log
 * (the standalone CLI follows `worker.log`) can draw it. Contract of the lines (INFO):
 *
 * - `{"msg": "rootfs build progress", "container", "phase", "done", "total"}` with `phase` and
 *   the counts of lib/rootfs's BuildProgress; logged on each phase's first and last event and at
 *   most once per interval between them;
 * - `{"msg": "rootfs disk ready", "container", "outcome"}` once the container's disk is in place.
 *
 * @module
 */
import type { BuildProgress } from "../rootfs/build.ts";
import type { Logger } from "../log/logger.ts";

/** `msg` of a progress line. */
export const ROOTFS_PROGRESS_MSG = "rootfs build progress";
/** `msg` of the line that ends a container's build. */
export const ROOTFS_READY_MSG = "rootfs disk ready";

/** Default ms between two progress lines of one phase. */
export const PROGRESS_INTERVAL_MS = 250;

/**
 * An `onProgress` for lib/rootfs's buildImage that logs `container`'s build on `log`, throttled
 * to one line per `intervalMs` within a phase (a phase's first and last events always pass).
 */
export function logBuildProgress(
  log: Logger,
  container: string,
  options: { intervalMs?: number; now?: () => number } = {},
): (p: BuildProgress) => void {
  const intervalMs = options.intervalMs ?? PROGRESS_INTERVAL_MS;
  const now = options.now ?? (() => performance.now());
  let phase = "";
  let lastDone = -1;
  let lastAt = -Infinity;
  return (p) => {
    const t = now();
    const edge = p.phase !== phase || (p.total > 0 && p.done >= p.total);
    if (p.phase === phase && p.done === lastDone) return;
    if (!edge && t - lastAt < intervalMs) return;
    phase = p.phase;
    lastDone = p.done;
    lastAt = t;
    log.info(ROOTFS_PROGRESS_MSG, { container, phase: p.phase, done: p.done, total: p.total });
  };
}
