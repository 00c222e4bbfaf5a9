/**
 * /proc parsing (stat with odd comm, status fields) and the readers against a live child process.
 */
import { assertEquals } from "../../tests/assert.ts";
import {
  childrenOf,
  isAlive,
  parseCapEff,
  parseRssBytes,
  parseStat,
  readStat,
  rssBytes,
} from "./proc.ts";

Deno.test("proc: parse stat with spaces and parentheses in comm", () => {
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

Deno.test("proc: status fields", () => {
  const status = "Name:\tx\nVmRSS:\t   1234 kB\nCapEff:\t000001ffffffffff\n";
  assertEquals(parseRssBytes(status), 1234 * 1024);
  assertEquals(parseRssBytes("Name:\tkthread\n"), 0);
  assertEquals(parseCapEff(status), 0x1ffffffffffn);
});

Deno.test("proc: a live child, its identity and memory; gone after exit", async () => {
  const child = new Deno.Command("sleep", { args: ["60"], stdin: "null" }).spawn();
  try {
    const stat = await readStat(child.pid);
    assertEquals(stat?.ppid, Deno.pid);
    assertEquals(await isAlive(child.pid, stat!.startTicks), true);
    assertEquals(await isAlive(child.pid, stat!.startTicks + 1), false);
    assertEquals((await childrenOf(Deno.pid)).includes(child.pid), true);
    assertEquals(((await rssBytes(child.pid)) ?? 0) > 0, true);
    child.kill("SIGKILL");
    await child.status;
    assertEquals(await isAlive(child.pid, stat!.startTicks), false);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
  }
});
