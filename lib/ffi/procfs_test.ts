/**
 * Reading /proc through FFI (live entries read, a missing process reads as undefined) and parsing
 * stat lines.
 */
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { parseStat, readProcText, readStat } from "./procfs.ts";

Deno.test("procfs: /proc files are readable through FFI; a missing process reads as undefined", async () => {
  const stat = await readProcText(`/proc/${Deno.pid}/stat`);
  assert(stat?.startsWith(`${Deno.pid} (`), stat);
  assertEquals(await readProcText("/proc/999999999/stat"), undefined);
});

Deno.test("procfs: parse stat with spaces and parentheses in comm", () => {
  const line =
    "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 39 0 0 0 0 0 0 0 20 0 1 0 987654 430080 " +
    "0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
  assertEquals(parseStat(line), {
    pid: 4242,
    comm: "a (b) c",
    state: "S",
    ppid: 17,
    startTicks: 987654,
  });
});

Deno.test("procfs: a stat line without its fields is refused; readStat of this process", async () => {
  assertThrows(() => parseStat("1 (x) S 1"), /malformed \/proc stat line: 1 \(x\) S 1/);
  assertThrows(() => parseStat("no parentheses"), /malformed \/proc stat line/);
  const self = await readStat(Deno.pid);
  assertEquals([self?.pid, self?.ppid], [Deno.pid, Deno.ppid]);
  assert(self!.startTicks > 0);
  assertEquals(await readStat(999999999), undefined);
});
