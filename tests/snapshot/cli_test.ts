/**
 * The pack/unpack/push/pull subcommands through bin/ateom-microvm, as a user runs them.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { withTempDir } from "../temp.ts";

const BIN = new URL("../../bin/ateom-microvm", import.meta.url).pathname;
const KiB = 1024;
const MiB = 1024 * KiB;

async function run(args: string[], stdin?: Uint8Array) {
  const child = new Deno.Command(BIN, {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

async function image(path: string) {
  using f = await Deno.open(path, { write: true, create: true });
  await f.truncate(32 * MiB);
  await f.seek(8 * MiB, Deno.SeekMode.Start);
  await f.write(new Uint8Array(2 * MiB).map((_, i) => (i * 13) & 0xff));
}

Deno.test("cli: pack and unpack files, with --progress off a terminal", async () => {
  await withTempDir("snapshot-cli-", async (dir) => {
    await image(`${dir}/img`);
    const pack = await run(["pack", "--progress", `${dir}/img`, `${dir}/img.ates`]);
    assertEquals(pack.code, 0, pack.stderr);
    // Off a terminal: the first update, then (every 5 s) more, then the summary; no \r.
    assertMatch(
      pack.stderr,
      /^pack [\d.]+ \S+ [\d.]+ \S+\/s\npack 2\.0 MiB [\d.]+ \S+\/s done\npack: 32\.0 MiB image, 2\.0 MiB populated, [\d.]+ \S+ written\n$/,
    );
    const packed = await Deno.readFile(`${dir}/img.ates`);
    assertEquals(new TextDecoder().decode(packed.subarray(0, 8)), "ATESPRSE");
    const unpack = await run(["unpack", `${dir}/img.ates`, `${dir}/out`]);
    assertEquals(unpack.code, 0, unpack.stderr);
    assertEquals(unpack.stderr, "");
    assertEquals(await Deno.readFile(`${dir}/out`), await Deno.readFile(`${dir}/img`));
    assert((await Deno.stat(`${dir}/out`)).blocks! * 512 <= 2 * MiB + 64 * KiB);
  });
});

Deno.test("cli: '-' streams through stdin and stdout", async () => {
  await withTempDir("snapshot-cli-", async (dir) => {
    await image(`${dir}/img`);
    const original = await Deno.readFile(`${dir}/img`);
    const toStdout = await run(["pack", `${dir}/img`, "-"]);
    assertEquals(toStdout.code, 0, toStdout.stderr);
    const fromStdin = await run(["unpack", "-", `${dir}/out`], toStdout.stdout);
    assertEquals(fromStdin.code, 0, fromStdin.stderr);
    assertEquals(await Deno.readFile(`${dir}/out`), original);
    const both = await run(["unpack", "-", "-"], toStdout.stdout);
    assertEquals(both.code, 0, both.stderr);
    assertEquals(both.stdout, original);
    // Packing stdin writes plain zstd (no magic), which unpack reads back.
    const plain = await run(["pack", "-", "-"], original.subarray(0, 9 * MiB));
    assertEquals(plain.code, 0, plain.stderr);
    assertEquals(Array.from(plain.stdout.subarray(0, 4)), [0x28, 0xb5, 0x2f, 0xfd]);
    const back = await run(["unpack", "-", "-"], plain.stdout);
    assertEquals(back.stdout, original.subarray(0, 9 * MiB));
  });
});

Deno.test("cli: a bad stream is one line, exit 1, no output file", async () => {
  await withTempDir("snapshot-cli-", async (dir) => {
    const bad = new TextEncoder().encode("ATESPRSE\x07\x00\x00\x00garbage");
    const result = await run(["unpack", "-", `${dir}/out`], bad);
    assertEquals(result.code, 1);
    assertEquals(
      result.stderr,
      "ateom-microvm unpack: unsupported sparse snapshot format version 7 (this build reads 2); " +
        "pack it again with a matching version\n",
    );
    assertEquals(await Array.fromAsync(Deno.readDir(dir)), []);
    const missing = await run(["pack", `${dir}/no-such-image`, `${dir}/out.ates`]);
    assertEquals(missing.code, 1);
    assertMatch(missing.stderr, /^ateom-microvm pack: No such file or directory .*no-such-image/);
    assertEquals(await Array.fromAsync(Deno.readDir(dir)), []);
    const usage = await run(["pack", "only-one"]);
    assertEquals(usage.code, 2);
    assertMatch(usage.stderr, /^ateom-microvm pack: missing argument: expected SRC DST; run/);
  });
});

Deno.test("cli: push and pull a checkpoint directory over file://", async () => {
  await withTempDir("snapshot-cli-", async (dir) => {
    await Deno.mkdir(`${dir}/ckpt`);
    await image(`${dir}/ckpt/memory-ranges`);
    await Deno.writeTextFile(`${dir}/ckpt/config.json`, "{}");
    const push = await run(["push", `${dir}/ckpt`, `file://${dir}/store/snap/`]);
    assertEquals(push.code, 0, push.stderr);
    assertEquals(push.stderr, `push: 2 files to file://${dir}/store/snap/\n`);
    const pull = await run(["pull", `file://${dir}/store/snap/`, `${dir}/restored`]);
    assertEquals(pull.code, 0, pull.stderr);
    assertEquals(
      await Deno.readFile(`${dir}/restored/memory-ranges`),
      await Deno.readFile(`${dir}/ckpt/memory-ranges`),
    );
    assertEquals(await Deno.readTextFile(`${dir}/restored/config.json`), "{}");
    await Deno.remove(`${dir}/store/snap/manifest.json`);
    const partial = await run(["pull", `file://${dir}/store/snap/`, `${dir}/again`]);
    assertEquals(partial.code, 1);
    assertMatch(
      partial.stderr,
      /^ateom-microvm pull: no snapshot manifest at file:\/\/.*: the snapshot is incomplete/,
    );
  });
});
