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

Deno.test("commands: --help of every command prints its help on stdout and exits 0", async () => {
  const { main } = await import("../../main.ts");
  for (const entry of COMMANDS) {
    const command = await entry.load();
    for (const flag of ["--help", "-h"]) {
      const out: string[] = [];
      const err: string[] = [];
      const { log, error } = console;
      console.log = (...a: unknown[]) => out.push(a.join(" "));
      console.error = (...a: unknown[]) => err.push(a.join(" "));
      let code;
      try {
        code = await main([entry.name, flag]);
      } finally {
        console.log = log;
        console.error = error;
      }
      assertEquals({ code, out, err }, { code: 0, out: [command.help], err: [] }, entry.name);
    }
  }
});
