/** Running network tools: stdin, recording, one-line failures naming the failing batch line. */
import { assert, assertEquals, assertMatch, assertRejects } from "../../tests/assert.ts";
import { annotateBatchError, CommandError, ProcessRunner, runChecked } from "./runner.ts";

Deno.test("runner: stdin reaches the program, processes are counted and recorded", async () => {
  const runner = new ProcessRunner({ record: true });
  const out = await runChecked(runner, ["cat"], "link set dev lo up\n");
  assertEquals(out, "link set dev lo up\n");
  await runner.run(["true"]);
  assertEquals(runner.spawned, 2);
  assertEquals(runner.invocations, [
    { argv: ["cat"], stdin: "link set dev lo up\n" },
    { argv: ["true"] },
  ]);
});

Deno.test("runner: a failing command becomes one line naming the command, exit and stderr", async () => {
  const runner = new ProcessRunner();
  const err = await assertRejects(
    () => runChecked(runner, ["ls", "/nonexistent-ateom-net"], undefined, "check the path"),
  );
  assert(err instanceof CommandError);
  assertMatch(
    err.message,
    /^ls \/nonexistent-ateom-net failed \(exit 2\): .*No such file.*; check the path$/,
  );
  const missing = await runner.run(["ateom-no-such-tool"]);
  assertEquals([missing.code, missing.stderr], [127, "ateom-no-such-tool: command not found"]);
});

Deno.test("runner: iproute2 batch errors name the failing script line", () => {
  const script = "link set dev lo up\nlink del dev nope\n";
  assertEquals(
    annotateBatchError('Cannot find device "nope"\nCommand failed -:2\n', script),
    'Cannot find device "nope"\nCommand failed -:2\n(line 2: link del dev nope)',
  );
  assertEquals(annotateBatchError("plain error\n", script), "plain error\n");
});
