/**
 * Help texts and error messages of the standalone subcommands, as snapshots: every `--help`, and
 * each bad argument's one-line error and exit code (2 for usage errors, 1 for what fails at run
 * time). Runs the CLI entry (main.ts) in-process with a temp state dir and no config file.
 */
import { main } from "../../main.ts";
import { assertEquals } from "../assert.ts";
import { assertGolden } from "./golden.ts";

const COMMANDS = ["run", "ps", "logs", "checkpoint", "restore", "rm", "doctor"];

const BAD: string[][] = [
  ["run"],
  ["run", "demo"],
  ["run", "Bad_Name", "--bundle", "/nonexistent/bundle"],
  ["run", "a", "b", "--bundle", "/nonexistent/bundle"],
  ["run", "demo", "--bundle", "/nonexistent/bundle", "--memory", "12"],
  ["run", "demo", "--bundle", "/nonexistent/bundle", "--memory", "lots"],
  ["run", "demo", "--bundle", "/nonexistent/bundle", "--vcpus", "0"],
  ["run", "demo", "--bundle", "/nonexistent/bundle", "--port", "80"],
  ["run", "demo", "--bundle", "/nonexistent/bundle", "--port", "0:80"],
  ["run", "demo", "--bundle", "/nonexistent/bundle", "--bogus"],
  ["run", "demo", "--bundle"],
  ["run", "demo", "--bundle", "/nonexistent/bundle"],
  ["ps", "extra"],
  ["ps", "--bogus"],
  ["logs"],
  ["logs", "a/b"],
  ["logs", "nosuch"],
  ["checkpoint"],
  ["checkpoint", "demo", "--to"],
  ["checkpoint", "nosuch"],
  ["restore"],
  ["restore", "demo", "--as", "Bad"],
  ["restore", "demo", "--port", "x"],
  ["restore", "nosuch"],
  ["rm"],
  ["rm", "../x"],
  ["rm", "nosuch"],
  ["doctor", "extra"],
  ["doctor", "--bogus"],
];

/** Runs main(args) capturing console output. */
async function capture(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await main(args);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

async function withState(fn: () => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: `standalone-usage-${Deno.pid}-` });
  const saved = ["ATEOM_MICROVM_STATE_DIR", "ATEOM_MICROVM_CONFIG"].map((k) =>
    [k, Deno.env.get(k)] as const
  );
  Deno.env.set("ATEOM_MICROVM_STATE_DIR", dir);
  Deno.env.set("ATEOM_MICROVM_CONFIG", `${dir}/no-config.toml`);
  try {
    await fn();
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    await Deno.remove(dir, { recursive: true });
  }
}

function transcript(args: string[], r: { code: number; stdout: string; stderr: string }) {
  return [
    `$ ateom-microvm ${args.join(" ")}`,
    `[exit ${r.code}]`,
    ...(r.stdout ? ["--- stdout", r.stdout] : []),
    ...(r.stderr ? ["--- stderr", r.stderr] : []),
    "",
  ].join("\n");
}

Deno.test("standalone: --help of every subcommand", async () => {
  const parts: string[] = [];
  for (const name of COMMANDS) {
    const r = await capture([name, "--help"]);
    assertEquals(r.code, 0, name);
    assertEquals(r.stderr, "", name);
    parts.push(transcript([name, "--help"], r));
  }
  await assertGolden("help.txt", parts.join("\n"));
});

Deno.test("standalone: bad arguments give one-line errors and exit codes", async () => {
  await withState(async () => {
    const parts: string[] = [];
    for (const args of BAD) {
      const r = await capture(args);
      assertEquals(r.stdout, "", args.join(" "));
      assertEquals(r.stderr.split("\n").length, 1, `one line for ${args.join(" ")}`);
      parts.push(transcript(args, r));
    }
    await assertGolden("errors.txt", parts.join("\n"));
  });
});

Deno.test("standalone: usage errors exit 2 through bin/ateom-microvm too", async () => {
  const bin = new URL("../../bin/ateom-microvm", import.meta.url).pathname;
  const out = await new Deno.Command(bin, {
    args: ["run", "demo"],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  assertEquals(out.code, 2);
  assertEquals(
    new TextDecoder().decode(out.stderr),
    "ateom-microvm run: missing --bundle DIR; run 'ateom-microvm run --help'\n",
  );
});
