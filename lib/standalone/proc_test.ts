/**
 * /proc status parsing, and process identity, children and memory of a live child process.
 */
import { assertEquals } from "../../tests/assert.ts";
import { childrenOf, isAlive, parseCapEff, parseRssBytes, rssBytes } from "./proc.ts";
import { readStat } from "../ffi/procfs.ts";

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
