/** The supervisor's worker argv: this program again, or the override. */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { selfArgv } from "./supervisor.ts";

Deno.test("supervisor: the worker argv is this program again, or the override", () => {
  // Under the pinned Deno: deno run ... main.ts (a compiled binary would be just itself).
  const argv = selfArgv(undefined);
  assertEquals(argv[0], Deno.execPath());
  assertEquals(argv.slice(1, 3), ["run", "--quiet"]);
  assertEquals(argv.includes("--allow-all"), true);
  assertEquals(argv.at(-1)!.endsWith("/main.ts"), true);
  assertEquals(selfArgv('["/usr/bin/ip","netns","exec","x","/bin/w"]'), [
    "/usr/bin/ip",
    "netns",
    "exec",
    "x",
    "/bin/w",
  ]);
  for (const bad of ["nope", "[]", "[1]", '"x"']) {
    assertThrows(() => selfArgv(bad), "$ATEOM_MICROVM_WORKER must be a JSON array of strings");
  }
});
