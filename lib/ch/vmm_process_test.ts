/**
 * VMM process helpers without a VMM: output line splitting, api socket path checks, start time
 * from /proc stat.
 */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { checkApiSocketPath, forwardLines, parseStartTime } from "./vmm_process.ts";

function streamOf(...chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const chunk of chunks) c.enqueue(enc.encode(chunk));
      c.close();
    },
  });
}

Deno.test("vmm process: output is forwarded line by line across chunk boundaries", async () => {
  const lines: string[] = [];
  await forwardLines(streamOf("a\nb", "c\r\n\nd\xe9", "\nlast"), (l) => lines.push(l));
  assertEquals(lines, ["a", "bc", "", "dé", "last"]);
  const split: string[] = [];
  // A multi-byte character split across chunks stays whole.
  const bytes = new TextEncoder().encode("ü\n");
  await forwardLines(
    new ReadableStream({
      start(c) {
        c.enqueue(bytes.subarray(0, 1));
        c.enqueue(bytes.subarray(1));
        c.close();
      },
    }),
    (l) => split.push(l),
  );
  assertEquals(split, ["ü"]);
});

Deno.test("vmm process: api socket paths CH cannot parse are refused", () => {
  assertThrows(() => checkApiSocketPath("/run/a,b/api.sock"), /contains ',' or '='/);
  assertThrows(() => checkApiSocketPath("/run/a=b/api.sock"), /contains ',' or '='/);
  assertThrows(() => checkApiSocketPath("run/api.sock"), /must be absolute/);
  assertThrows(() => checkApiSocketPath("/" + "x".repeat(107)), /longer than a unix socket allows/);
  checkApiSocketPath("/run/ateom/actors/a1/api.sock");
});

Deno.test("vmm process: the start time is field 22 of /proc/<pid>/stat, whatever the comm holds", () => {
  const stat = "4242 (cloud hyper) (v) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 " +
    "987654 1000000 100 18446744073709551615";
  assertEquals(parseStartTime(stat), "987654");
  assertThrows(() => parseStartTime("1 (x) S 1"), /malformed \/proc stat line/);
});
