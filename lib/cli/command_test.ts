/**
 * Flag parsing shared by the subcommands: `-h`/`--help` throws HelpRequested (answered by
 * main.ts), unknown flags are one-line UsageErrors, positional counts are checked.
 */
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { expectPositionals, HelpRequested, parseFlags, UsageError } from "./command.ts";

const OPTIONS = { json: { type: "boolean" }, name: { type: "string" } } as const;

Deno.test("parseFlags: values and positionals", () => {
  const r = parseFlags(["a", "--json", "--name", "x", "b"], OPTIONS);
  assertEquals({ ...r.values }, { json: true, name: "x" });
  assertEquals(r.positionals, ["a", "b"]);
});

Deno.test("parseFlags: --help and -h throw HelpRequested", () => {
  for (const args of [["--help"], ["-h"], ["a", "--json", "--help"]]) {
    const e = assertThrows(() => parseFlags(args, OPTIONS), "help requested");
    assert(e instanceof HelpRequested, args.join(" "));
  }
});

Deno.test("parseFlags: an unknown flag is a UsageError even beside --help", () => {
  const e = assertThrows(
    () => parseFlags(["--help", "--bogus"], OPTIONS),
    /^Unknown option '--bogus'$/,
  );
  assert(e instanceof UsageError);
});

Deno.test("expectPositionals: too few and too many name what is expected", () => {
  assertEquals(expectPositionals(["a", "b"], ["src", "dst"]), ["a", "b"]);
  const few = assertThrows(
    () => expectPositionals(["a"], ["src", "dst"]),
    /^missing argument: expected SRC DST$/,
  );
  assert(few instanceof UsageError);
  assertThrows(
    () => expectPositionals(["a", "b", "c"], ["src", "dst"]),
    /^unexpected argument "c": expected SRC DST$/,
  );
});
