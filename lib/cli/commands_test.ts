/** The command table: each lazily loaded entry matches the command it loads; names are unique. */
import { assertEquals } from "../../tests/assert.ts";
import { COMMANDS } from "./commands.ts";

Deno.test("commands: every entry loads the command it names, with the same summary", async () => {
  for (const entry of COMMANDS) {
    const command = await entry.load();
    assertEquals([command.name, command.summary], [entry.name, entry.summary]);
  }
});

Deno.test("commands: names are unique", () => {
  const names = COMMANDS.map((c) => c.name);
  assertEquals(new Set(names).size, names.length);
});
