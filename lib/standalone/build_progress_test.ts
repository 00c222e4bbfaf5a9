/**
 * The rootfs build's progress in `run`/`restore`: worker log lines → build events, their drawing
 * on a terminal and off one, tailing a log file that is absent, partly written or replaced, and
 * following it for the length of a call.
 */
import { fakeOut } from "../../tests/fake_out.ts";
import { join } from "node:path";
import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { jsonLogger } from "../log/logger.ts";
import { logBuildProgress, ROOTFS_READY_MSG } from "../lifecycle/build_log.ts";
import {
  type BuildEvent,
  buildProgressView,
  followBuildProgress,
  LogTail,
  parseBuildLine,
} from "./build_progress.ts";

const MiB = 1024 * 1024;

/** The worker's lines for a build of container `main`, as lib/lifecycle logs them. */
function workerLines(): string[] {
  const lines: string[] = [];
  const log = jsonLogger((text) => lines.push(...text.split("\n").filter(Boolean)), "INFO", {
    rpc: "RunWorkload",
  });
  const onProgress = logBuildProgress(log, "main", { now: () => 0 });
  onProgress({ phase: "scan", done: 0, total: 0 });
  onProgress({ phase: "scan", done: 7, total: 7 });
  onProgress({ phase: "mkfs", done: 0, total: 4 * MiB });
  onProgress({ phase: "mkfs", done: 4 * MiB, total: 4 * MiB });
  onProgress({ phase: "fixup", done: 0, total: 1 });
  log.info(ROOTFS_READY_MSG, { container: "main", outcome: "built" });
  return lines;
}

Deno.test("parseBuildLine maps the worker's build lines to events and skips every other line", () => {
  assertEquals(workerLines().map(parseBuildLine), [
    { container: "main", progress: { phase: "scan", done: 0, total: 0 } },
    { container: "main", progress: { phase: "scan", done: 7, total: 7 } },
    { container: "main", progress: { phase: "mkfs", done: 0, total: 4 * MiB } },
    { container: "main", progress: { phase: "mkfs", done: 4 * MiB, total: 4 * MiB } },
    { container: "main", progress: { phase: "fixup", done: 0, total: 1 } },
    { container: "main", ready: "built" },
  ]);
  for (
    const other of [
      "",
      "panic: not JSON",
      "null",
      "[1]",
      `{"msg":"building rootfs disk","container":"main"}`,
      `{"msg":"rootfs build progress","phase":"mkfs","done":1,"total":2}`, // no container
      `{"msg":"rootfs build progress","container":"main","phase":"boot","done":1,"total":2}`,
      `{"msg":"rootfs build progress","container":"main","phase":"mkfs","done":"1","total":2}`,
      `{"message":"count 1","logging.googleapis.com/labels":{"ate.dev/actor_id":"a"}}`,
    ]
  ) {
    assertEquals(parseBuildLine(other), undefined, other);
  }
});

function draw(terminal: boolean, events: BuildEvent[], clocks: number[]) {
  const { written, out } = fakeOut(terminal);
  let clock = 0;
  const view = buildProgressView({ out, now: () => clock });
  events.forEach((e, i) => {
    clock = clocks[i];
    view.show(e);
  });
  view.end();
  return written;
}

const EVENTS = workerLines().map((l) => parseBuildLine(l)!);
const CLOCKS = [0, 0, 0, 1000, 1000, 1000];

Deno.test("on a terminal the build is one line redrawn in place, ending with the outcome", () => {
  assertEquals(draw(true, EVENTS, CLOCKS), [
    "\rrootfs main: scanning source (0 entries)\x1b[K",
    "\rrootfs main: scanning source (7 entries)\x1b[K",
    "\rrootfs main: writing 0 B / 4.0 MiB (0%) -\x1b[K",
    "\rrootfs main: writing 4.0 MiB / 4.0 MiB (100%) 4.0 MiB/s\x1b[K",
    "\rrootfs main: writing 4.0 MiB / 4.0 MiB (100%) 4.0 MiB/s done\x1b[K\n",
    "\rrootfs main: normalising metadata\x1b[K",
    "\rrootfs main: ready (built)\x1b[K\n",
  ]);
  // Cut short (the call failed): the open line still gets its newline.
  assertEquals(draw(true, EVENTS.slice(0, 3), CLOCKS), [
    "\rrootfs main: scanning source (0 entries)\x1b[K",
    "\rrootfs main: scanning source (7 entries)\x1b[K",
    "\rrootfs main: writing 0 B / 4.0 MiB (0%) -\x1b[K",
    "\rrootfs main: writing 0 B / 4.0 MiB (0%) - done\x1b[K\n",
  ]);
});

Deno.test("off a terminal the build is plain lines", () => {
  assertEquals(
    draw(false, EVENTS, CLOCKS).join(""),
    [
      "rootfs main: scanning source (0 entries)",
      "rootfs main: scanning source (7 entries)",
      "rootfs main: writing 0 B / 4.0 MiB (0%) -",
      "rootfs main: writing 4.0 MiB / 4.0 MiB (100%) 4.0 MiB/s done",
      "rootfs main: normalising metadata",
      "rootfs main: ready (built)",
      "",
    ].join("\n"),
  );
  assertEquals(draw(false, EVENTS.slice(0, 2), CLOCKS), [
    "rootfs main: scanning source (0 entries)\n",
    "rootfs main: scanning source (7 entries)\n",
  ]);
});

Deno.test("LogTail: absent file, old lines skipped, partial lines held, a replaced or cut file reread", async () => {
  const dir = await Deno.makeTempDir({ prefix: `build-progress-${Deno.pid}-` });
  try {
    const path = join(dir, "worker.log");
    const absent = await LogTail.atEnd(path);
    assertEquals(await absent.lines(), []);
    await Deno.writeTextFile(path, "first\nsec");
    assertEquals(await absent.lines(), ["first"]);
    await Deno.writeTextFile(path, "ond\n\nthird\n", { append: true });
    assertEquals(await absent.lines(), ["second", "third"]);

    const tail = await LogTail.atEnd(path); // written before: not this tail's
    assertEquals(await tail.lines(), []);
    await Deno.writeTextFile(path, "fourth\n", { append: true });
    assertEquals(await tail.lines(), ["fourth"]);
    // A restarted worker's new file (another inode) is read from its start.
    await Deno.writeTextFile(join(dir, "new.log"), "fresh\n");
    await Deno.rename(join(dir, "new.log"), path);
    assertEquals(await tail.lines(), ["fresh"]);
    // The same file truncated is read from its start too.
    await Deno.writeTextFile(path, "");
    await Deno.writeTextFile(path, "x\n", { append: true });
    assertEquals(await tail.lines(), ["x"]);
    await Deno.remove(path);
    assertEquals(await tail.lines(), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("followBuildProgress draws the lines the file gains during the call, then stops", async () => {
  const dir = await Deno.makeTempDir({ prefix: `build-progress-${Deno.pid}-` });
  try {
    const path = join(dir, "worker.log");
    const lines = workerLines();
    await Deno.writeTextFile(path, lines.join("\n") + "\n"); // an earlier build: not drawn
    const { written, out } = fakeOut(false);
    const result = await followBuildProgress(path, async () => {
      // The worker writes its last line in two pieces; the call returns right after.
      const ready = lines.at(-1)!;
      await Deno.writeTextFile(path, lines.slice(0, -1).join("\n") + "\n", { append: true });
      await Deno.writeTextFile(path, ready.slice(0, 10), { append: true });
      await Deno.writeTextFile(path, ready.slice(10) + "\n", { append: true });
      return "ran";
    }, { out, now: () => 0 });
    assertEquals(result, "ran");
    assertEquals(written.filter((l) => l.includes("ready")), ["rootfs main: ready (built)\n"]);
    assertEquals(written.length, 6);

    // A failing call still ends the drawing and its error is the caller's.
    const failed = fakeOut(true);
    await assertRejects(
      () =>
        followBuildProgress(path, async () => {
          await Deno.writeTextFile(path, lines[1] + "\n", { append: true });
          throw new Error("RunWorkload failed");
        }, { out: failed.out }),
      "RunWorkload failed",
    );
    assertEquals(failed.written, ["\rrootfs main: scanning source (7 entries)\x1b[K", "\n"]);
    // Nothing appended: nothing drawn.
    const quiet = fakeOut(false);
    assertEquals(await followBuildProgress(path, () => Promise.resolve(1), { out: quiet.out }), 1);
    assertEquals(quiet.written, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
