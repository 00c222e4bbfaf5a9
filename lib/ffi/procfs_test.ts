/** Reading /proc through FFI: live entries read, a missing process reads as undefined. */
import { assert, assertEquals } from "../../tests/assert.ts";
import { readProcText } from "./procfs.ts";

Deno.test("procfs: /proc files are readable through FFI; a missing process reads as undefined", async () => {
  const stat = await readProcText(`/proc/${Deno.pid}/stat`);
  assert(stat?.startsWith(`${Deno.pid} (`), stat);
  assertEquals(await readProcText("/proc/999999999/stat"), undefined);
});
