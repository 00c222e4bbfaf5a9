/**
 * Snapshot codec benchmark (issue 5's numbers), side by side in one run on a 2 GiB image with
 * 150 MiB populated (memory-like pages: random, text, pointer-ish and zero pages):
 *
 * - pack vs `zstd -1 -T0` on the same sparse file (target ≥ 3×) and on a dense file of only the
 *   populated bytes (≥ 0.5×); unpack vs `zstd -d` of that dense file (≥ 0.5×);
 * - allocated size of the unpacked file vs the populated bytes (within 10 %);
 * - peak RSS of pack/unpack child processes (GNU time -v; ≤ 300 MB), also on a fully populated
 *   2 GiB incompressible image.
 *
 * Each timing is the best of a few runs of a whole process (startup included for both sides).
 *
 * @module
 */
import { dataBytes, extents } from "../../lib/sparse/extents.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BIN = new URL("../../bin/ateom-microvm", import.meta.url).pathname;
const TIME = "/usr/bin/time";
const RUNS = 3;

interface Run {
  seconds: number;
  /** User + system CPU seconds (steadier than wall time on a busy machine). */
  cpu?: number;
  maxRssKb?: number;
}

async function timed(argv: string[]): Promise<Run> {
  const haveTime = await Deno.stat(TIME).then(() => true, () => false);
  const args = haveTime ? ["-v", ...argv] : argv.slice(1);
  const start = performance.now();
  const out = await new Deno.Command(haveTime ? TIME : argv[0], {
    args,
    stdout: "null",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - start) / 1000;
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${argv.join(" ")} failed: ${stderr.trim().split("\n")[0]}`);
  const rss = stderr.match(/Maximum resident set size \(kbytes\): (\d+)/);
  const user = stderr.match(/User time \(seconds\): ([\d.]+)/);
  const system = stderr.match(/System time \(seconds\): ([\d.]+)/);
  const cpu = user && system ? Number(user[1]) + Number(system[1]) : undefined;
  return { seconds, cpu, maxRssKb: rss ? Number(rss[1]) : undefined };
}

/** Runs each command RUNS times, alternating them so all see the same machine state; best each. */
async function alternate(
  commands: { argv: string[]; before?: () => Promise<void> }[],
): Promise<Run[]> {
  const results: Run[] = commands.map(() => ({ seconds: Infinity }));
  for (let round = 0; round < RUNS; round++) {
    for (const [i, c] of commands.entries()) {
      await c.before?.();
      const r = await timed(c.argv);
      const rss = Math.max(results[i].maxRssKb ?? 0, r.maxRssKb ?? 0) || undefined;
      const cpu = r.cpu === undefined ? undefined : Math.min(results[i].cpu ?? Infinity, r.cpu);
      results[i] = { seconds: Math.min(results[i].seconds, r.seconds), cpu, maxRssKb: rss };
    }
  }
  return results;
}

/** xorshift32, so the image is the same in every run. */
function random(seed: number) {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

const WORDS = ["kernel", "page", "struct", "task", "0000", "ffff", "mm", "inode", "dentry"];

function fillMemoryLike(buf: Uint8Array, rnd: () => number) {
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
  for (let p = 0; p < buf.length; p += 4096) {
    const kind = rnd();
    if (kind < 0.25) {
      for (let i = p >> 2; i < (p + 4096) >> 2; i++) words[i] = (rnd() * 4294967296) >>> 0;
    } else if (kind < 0.6) {
      let i = p;
      while (i < p + 4096) {
        const w = WORDS[(rnd() * WORDS.length) | 0];
        for (let j = 0; j < w.length && i < p + 4096; j++) buf[i++] = w.charCodeAt(j);
        if (i < p + 4096) buf[i++] = 32;
      }
    } else if (kind < 0.8) {
      for (let i = p; i < p + 4096; i += 8) {
        buf[i] = (rnd() * 16) | 0;
        buf[i + 1] = 0x10;
        buf[i + 7] = 0xff;
      }
    } // else: a populated zero page
  }
}

/** 2 GiB image, `populated` bytes in extents of 64 KiB–8 MiB at 4 KiB-aligned offsets. */
async function makeImage(path: string, populated: number) {
  const rnd = random(2463534242);
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  await f.truncate(2 * GiB);
  const slot = 16 * MiB;
  const used = new Set<number>();
  let done = 0;
  while (done < populated) {
    const n = (rnd() * ((2 * GiB) / slot)) | 0;
    if (used.has(n)) continue;
    used.add(n);
    const len = Math.min(populated - done, (1 + ((rnd() * 128) | 0)) * 64 * 1024);
    const buf = new Uint8Array(len);
    fillMemoryLike(buf, rnd);
    await f.seek(n * slot + ((rnd() * 64) | 0) * 4096, Deno.SeekMode.Start);
    for (let o = 0; o < len;) o += await f.write(buf.subarray(o));
    done += len;
  }
}

async function makeDense(image: string, dense: string) {
  using src = await Deno.open(image);
  using out = await Deno.open(dense, { write: true, create: true, truncate: true });
  for await (const [start, end] of extents(image)) {
    const buf = new Uint8Array(end - start);
    await src.seek(start, Deno.SeekMode.Start);
    for (let o = 0; o < buf.length;) o += (await src.read(buf.subarray(o)))!;
    for (let o = 0; o < buf.length;) o += await out.write(buf.subarray(o));
  }
}

async function allocated(path: string) {
  return (await Deno.stat(path)).blocks! * 512;
}

const mb = (kb?: number) => kb === undefined ? "n/a" : `${(kb / 1024).toFixed(0)} MB`;
const verdict = (ok: boolean) => ok ? "ok" : "BELOW TARGET";

/** Runs the benchmark and prints its table. */
export async function run(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "snapshot-bench-" });
  const rm = (p: string) => Deno.remove(p).catch(() => {});
  try {
    const img = `${dir}/img`;
    const dense = `${dir}/dense`;
    await makeImage(img, 150 * MiB);
    await makeDense(img, dense);
    const populated = await dataBytes(img);
    console.log(
      `snapshot bench: 2 GiB image, ${(populated / MiB).toFixed(0)} MiB populated, ` +
        `${navigator.hardwareConcurrency} cores, best of ${RUNS}`,
    );

    // Settle the freshly written files so no writeback runs during the timings.
    await new Deno.Command("sync").output();
    const [pack, zSparse, zDense] = await alternate([
      { argv: [BIN, "pack", img, `${dir}/img.ates`], before: () => rm(`${dir}/img.ates`) },
      { argv: ["zstd", "-1", "-T0", "-q", "-f", img, "-o", `${dir}/img.zst`] },
      { argv: ["zstd", "-1", "-T0", "-q", "-f", dense, "-o", `${dir}/dense.zst`] },
    ]);
    const [unpack, zDecode] = await alternate([
      { argv: [BIN, "unpack", `${dir}/img.ates`, `${dir}/out`], before: () => rm(`${dir}/out`) },
      { argv: ["zstd", "-d", "-q", "-f", `${dir}/dense.zst`, "-o", `${dir}/dense.out`] },
    ]);
    const alloc = await allocated(`${dir}/out`);
    const same = (await new Deno.Command("cmp", { args: [img, `${dir}/out`] }).output()).success;
    const sizes = {
      ates: (await Deno.stat(`${dir}/img.ates`)).size,
      zst: (await Deno.stat(`${dir}/dense.zst`)).size,
    };

    const allocRatio = alloc / populated;
    const cpu = (r: Run) => r.cpu === undefined ? "" : ` cpu ${r.cpu.toFixed(2)} s`;
    const line = (name: string, r: Run, extra = "") =>
      console.log(`  ${name.padEnd(28)} ${r.seconds.toFixed(3)} s${cpu(r)}  ${extra}`);
    const ratio = (ours: Run, theirs: Run, target: number) => {
      const wall = theirs.seconds / ours.seconds;
      const byCpu = ours.cpu && theirs.cpu
        ? ` (by cpu ${(theirs.cpu / ours.cpu).toFixed(2)}×)`
        : "";
      return `speed ratio ${wall.toFixed(2)}×${byCpu}, target ≥ ${target}: ${
        verdict(wall >= target)
      }`;
    };
    const [startup] = await alternate([{ argv: [BIN, "version"] }]);
    line(
      "CLI startup (version)",
      startup,
      "included in pack/unpack; the targets leave little room for it",
    );
    line("pack", pack, `rss ${mb(pack.maxRssKb)}, out ${(sizes.ates / MiB).toFixed(1)} MiB`);
    line("zstd -1 -T0 sparse file", zSparse, ratio(pack, zSparse, 3));
    line(
      "zstd -1 -T0 dense populated",
      zDense,
      `${ratio(pack, zDense, 0.5)}, out ${(sizes.zst / MiB).toFixed(1)} MiB`,
    );
    line("unpack", unpack, `rss ${mb(unpack.maxRssKb)}, identical to the source: ${same}`);
    line("zstd -d dense populated", zDecode, ratio(unpack, zDecode, 0.5));
    console.log(
      `  allocated after unpack       ${(alloc / MiB).toFixed(1)} MiB = ${
        (100 * allocRatio).toFixed(1)
      } % ` +
        `of populated (target 90–110 %): ${verdict(Math.abs(allocRatio - 1) <= 0.1)}`,
    );
    console.log(
      `  peak RSS pack / unpack       ${mb(pack.maxRssKb)} / ${
        mb(unpack.maxRssKb)
      } (target ≤ 300 MB): ` +
        verdict(Math.max(pack.maxRssKb ?? 0, unpack.maxRssKb ?? 0) <= 300 * 1024),
    );

    // Worst case for memory: every byte populated and incompressible.
    await Promise.all([
      rm(img),
      rm(dense),
      rm(`${dir}/out`),
      rm(`${dir}/img.zst`),
      rm(`${dir}/dense.out`),
    ]);
    const full = `${dir}/full`;
    const head = await new Deno.Command("head", {
      args: ["-c", String(2 * GiB), "/dev/urandom"],
      stdout: "piped",
    }).spawn();
    await head.stdout.pipeTo((await Deno.open(full, { write: true, create: true })).writable);
    const fullPack = await timed([BIN, "pack", full, `${dir}/full.ates`]);
    await rm(full);
    const fullUnpack = await timed([BIN, "unpack", `${dir}/full.ates`, `${dir}/full.out`]);
    await rm(`${dir}/full.out`);
    await Deno.writeFile(`${dir}/zeros`, new Uint8Array());
    await Deno.truncate(`${dir}/zeros`, 2 * GiB);
    const zPlain = await timed([
      "zstd",
      "-1",
      "-q",
      "--long=27",
      "-f",
      `${dir}/zeros`,
      "-o",
      `${dir}/zeros.zst`,
    ]);
    void zPlain;
    const plainUnpack = await timed([BIN, "unpack", `${dir}/zeros.zst`, `${dir}/zeros.out`]);
    console.log(
      `  2 GiB random, all populated: pack ${fullPack.seconds.toFixed(1)} s rss ${
        mb(fullPack.maxRssKb)
      }, ` +
        `unpack ${fullUnpack.seconds.toFixed(1)} s rss ${
          mb(fullUnpack.maxRssKb)
        }; plain zstd of 2 GiB zeros: ` +
        `unpack rss ${mb(plainUnpack.maxRssKb)}, allocated ${
          ((await allocated(`${dir}/zeros.out`)) / MiB).toFixed(1)
        } MiB  ` +
        verdict(
          Math.max(fullPack.maxRssKb ?? 0, fullUnpack.maxRssKb ?? 0, plainUnpack.maxRssKb ?? 0) <=
            300 * 1024,
        ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await run();
