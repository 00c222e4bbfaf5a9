/**
 * The `mkfs` subcommand end to end, as a separate process: one-line errors and no OUT_IMAGE
 * left behind for a missing or unreadable source, and the build/skip report on success.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { progressLine } from "../../lib/rootfs/command.ts";
import { withTempDir } from "../temp.ts";

const repo = new URL("../../", import.meta.url).pathname;
const deno = Deno.execPath();
const isRoot = Deno.uid() === 0;

async function cli(args: string[], opts: { asNobody?: string } = {}) {
  const argv = [
    "run",
    "--no-lock",
    "--quiet",
    "--config",
    `${repo}/deno.json`,
    "-A",
    `${repo}/main.ts`,
    "mkfs",
    ...args,
  ];
  const cmd = opts.asNobody
    ? new Deno.Command("setpriv", {
      args: [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "env",
        `DENO_DIR=${opts.asNobody}`,
        `HOME=${opts.asNobody}`,
        deno,
        ...argv,
      ],
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(deno, { args: argv, stdout: "piped", stderr: "piped" });
  const out = await cmd.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("mkfs CLI: missing SRC_DIR → one-line error, exit 1, no OUT_IMAGE", async () => {
  await withTempDir("mkfs-cli-", async (dir) => {
    const r = await cli([`${dir}/missing`, `${dir}/out.img`]);
    assertEquals(r.code, 1);
    assertEquals(
      r.stderr,
      `ateom-microvm mkfs: source directory ${dir}/missing does not exist; pass the bundle's rootfs directory\n`,
    );
    assertEquals([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("mkfs CLI: wrong arguments are a usage error (exit 2)", async () => {
  const r = await cli(["only-one"]);
  assertEquals(r.code, 2);
  assertMatch(r.stderr, /^ateom-microvm mkfs: missing argument: expected SRC_DIR OUT_IMAGE;/);
});

Deno.test({
  name: "mkfs CLI: builds, then reports the existing image for the same contents",
  ignore: !isRoot,
  async fn() {
    await withTempDir("mkfs-cli-", async (dir) => {
      await Deno.mkdir(`${dir}/src/etc`, { recursive: true });
      await Deno.writeTextFile(`${dir}/src/etc/hostname`, "actor\n");
      const first = await cli([`${dir}/src`, `${dir}/out.img`, "--verify"]);
      assertEquals(first.code, 0, first.stderr);
      assertMatch(first.stdout, /^\/.*out\.img: built, \d+ MiB, \d+ inodes, key [0-9a-f]{64}\n$/);
      const second = await cli([`${dir}/src`, `${dir}/out.img`]);
      assertMatch(second.stdout, /: existing, /);
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["out.img", "src"]);
    });
  },
});

Deno.test({
  name: "mkfs CLI: an unreadable entry (run as nobody) → one-line error naming it, no output",
  ignore: !isRoot,
  async fn() {
    await withTempDir("mkfs-cli-", async (dir) => {
      await Deno.chmod(dir, 0o777);
      await Deno.mkdir(`${dir}/src`, { mode: 0o755 });
      await Deno.mkdir(`${dir}/out`, { mode: 0o777 });
      await Deno.mkdir(`${dir}/home`, { mode: 0o777 });
      await Deno.chmod(`${dir}/out`, 0o777);
      await Deno.chmod(`${dir}/home`, 0o777);
      await Deno.writeTextFile(`${dir}/src/readable`, "ok");
      await Deno.chmod(`${dir}/src/readable`, 0o644);
      await Deno.writeTextFile(`${dir}/src/locked`, "secret");
      await Deno.chmod(`${dir}/src/locked`, 0o000);
      const probe = await new Deno.Command("setpriv", {
        args: ["--reuid=65534", "--regid=65534", "--clear-groups", "test", "-r", `${repo}/main.ts`],
      }).output();
      if (!probe.success) {
        console.log("skipped: the repository is not readable by nobody (uid 65534)");
        return;
      }
      const r = await cli([`${dir}/src`, `${dir}/out/img`], { asNobody: `${dir}/home` });
      assertEquals(r.code, 1, r.stderr);
      assertEquals(r.stderr.split("\n").length, 2, r.stderr);
      assertMatch(
        r.stderr,
        /^ateom-microvm mkfs: cannot read .*src\/locked: Permission denied; every entry of the bundle must be readable by the worker\n$/,
      );
      assertEquals([...Deno.readDirSync(`${dir}/out`)], []);
    });
  },
});

Deno.test("mkfs CLI: progress lines for a terminal", () => {
  assertEquals(
    progressLine({ phase: "mkfs", done: 50 * 1024 * 1024, total: 200 * 1024 * 1024 }),
    "mkfs: writing 50/200 MiB (25%)",
  );
  assertEquals(
    progressLine({ phase: "scan", done: 7, total: 7 }),
    "mkfs: scanning source (7 entries)",
  );
  assert(progressLine({ phase: "fixup", done: 0, total: 2 }).includes("normalising"));
});
