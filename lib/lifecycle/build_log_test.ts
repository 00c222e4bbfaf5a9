/** The rootfs build's progress log lines: their fields and the throttle within a phase. */
import { assertEquals } from "../../tests/assert.ts";
import { captureLogger } from "../log/logger.ts";
import { logBuildProgress, ROOTFS_PROGRESS_MSG } from "./build_log.ts";

Deno.test("logBuildProgress logs each phase's edges and at most one line per interval between", () => {
  const log = captureLogger();
  let clock = 0;
  const onProgress = logBuildProgress(log.with({ rpc: "run" }), "main", {
    intervalMs: 250,
    now: () => clock,
  });
  onProgress({ phase: "scan", done: 0, total: 0 }); // first of a phase
  onProgress({ phase: "scan", done: 7, total: 7 }); // last of a phase
  clock = 10;
  onProgress({ phase: "mkfs", done: 0, total: 4096 });
  clock = 100;
  onProgress({ phase: "mkfs", done: 1024, total: 4096 }); // within 250 ms: dropped
  clock = 300;
  onProgress({ phase: "mkfs", done: 2048, total: 4096 });
  onProgress({ phase: "mkfs", done: 2048, total: 4096 }); // no news: dropped
  clock = 310;
  onProgress({ phase: "mkfs", done: 4096, total: 4096 }); // last: passes the throttle
  onProgress({ phase: "fixup", done: 0, total: 1 });
  onProgress({ phase: "fixup", done: 1, total: 1 });
  assertEquals(
    log.records.map(({ time: _time, ...r }) => r),
    [
      ["scan", 0, 0],
      ["scan", 7, 7],
      ["mkfs", 0, 4096],
      ["mkfs", 2048, 4096],
      ["mkfs", 4096, 4096],
      ["fixup", 0, 1],
      ["fixup", 1, 1],
    ].map(([phase, done, total]) => ({
      level: "INFO",
      msg: ROOTFS_PROGRESS_MSG,
      rpc: "run",
      container: "main",
      phase,
      done,
      total,
    })),
  );
});
