/**
 * Progress output against a fake stderr and clock: formatting, terminal redraws, plain lines, per-
 * file bars.
 */
import { fakeOut } from "../../tests/fake_out.ts";
import { assertEquals } from "../../tests/assert.ts";
import { fileProgress, formatBytes, formatProgress, progress } from "./progress.ts";

Deno.test("formatBytes and formatProgress", () => {
  assertEquals(formatBytes(512), "512 B");
  assertEquals(formatBytes(1536), "1.5 KiB");
  assertEquals(formatBytes(3 * 1024 ** 3), "3.0 GiB");
  assertEquals(
    formatProgress("pack", 10 * 1024 ** 2, 2, 40 * 1024 ** 2),
    "pack 10.0 MiB / 40.0 MiB (25%) 5.0 MiB/s",
  );
  assertEquals(formatProgress("pull", 100, 0), "pull 100 B -");
});

Deno.test("progress on a terminal redraws one line with \\r, throttled", () => {
  const { written, out } = fakeOut(true);
  let clock = 0;
  const bar = progress("unpack", true, { out, now: () => clock, interval: 100 });
  clock = 1000;
  bar.update(1024 ** 2);
  clock = 1050;
  bar.update(2 * 1024 ** 2); // within the interval: not drawn
  clock = 2000;
  bar.update(4 * 1024 ** 2);
  bar.done(4 * 1024 ** 2);
  assertEquals(written, [
    "\runpack 1.0 MiB 1.0 MiB/s\x1b[K",
    "\runpack 4.0 MiB 2.0 MiB/s\x1b[K",
    "\runpack 4.0 MiB 2.0 MiB/s done\x1b[K\n",
  ]);
});

Deno.test("progress off a terminal prints occasional plain lines; disabled prints nothing", () => {
  const { written, out } = fakeOut(false);
  let clock = 0;
  const bar = progress("pack", true, { out, now: () => clock, interval: 5000 });
  for (clock = 1000; clock <= 9000; clock += 1000) bar.update(clock * 1024, 9000 * 1024);
  bar.done(9000 * 1024);
  assertEquals(written, [
    "pack 1000.0 KiB / 8.8 MiB (11%) 1000.0 KiB/s\n",
    "pack 5.9 MiB / 8.8 MiB (66%) 1000.0 KiB/s\n",
    "pack 8.8 MiB / 8.8 MiB (100%) 900.0 KiB/s done\n",
  ]);
  const quiet = fakeOut(false);
  const off = progress("pack", false, { out: quiet.out });
  off.update(1);
  off.done(1);
  assertEquals(quiet.written, []);
});

Deno.test("fileProgress draws one bar per file and finishes each", () => {
  const { written, out } = fakeOut(false);
  let clock = 0;
  const bars = fileProgress("push", true, { out, now: () => clock, interval: 5000 });
  clock = 1000;
  bars.update({ file: "config.json", bytes: 1024 });
  bars.update({ file: "memory-ranges", bytes: 2048 });
  clock = 2000;
  bars.update({ file: "memory-ranges", bytes: 4096 });
  bars.end();
  assertEquals(written, [
    "push config.json 1.0 KiB -\n",
    "push config.json 1.0 KiB - done\n",
    "push memory-ranges 2.0 KiB -\n",
    "push memory-ranges 4.0 KiB 4.0 KiB/s done\n",
  ]);
  const quiet = fakeOut(false);
  const off = fileProgress("pull", false, { out: quiet.out });
  off.update({ file: "a", bytes: 1 });
  off.end();
  assertEquals(quiet.written, []);
});
