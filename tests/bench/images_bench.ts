/**
 * Disk and memory image benchmarks (issue 4), each measured side by side in one run:
 *   - merge of a 2 GiB base (150 MiB working set) with a 10 MiB OnDemand delta: in-place vs
 *     copying merge (expected ≥ 10×), with the inputs' page-cache state as at a checkpoint after
 *     an OnDemand restore, all on disk, and all cached;
 *   - sparse copy of that base: allocated size of the copy vs the source (expected within 5 %);
 *   - rootfs image of a 10k-file / 200 MiB tree: buildImage vs a bare `mkfs.ext4 -d` with the
 *     same geometry (expected ≤ 1.5×).
 * Prints numbers only; nothing here fails on a threshold.
 *
 * Run: `make bench` or `deno run -A tests/bench/images_bench.ts`
 *
 * @module
 */
import { mergeByCopy, mergeCleanups, mergeDelta } from "../../lib/sparse/merge.ts";
import { copyRegions, sparseCopy } from "../../lib/sparse/copy.ts";
import { buildImage } from "../../lib/rootfs/build.ts";
import { FEATURES } from "../../lib/rootfs/ext4.ts";
import { sha256OfData } from "../rootfs/fixtures.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const ROUNDS = 3;
const MKFS_ROUNDS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

/** Deterministic pseudo-random bytes (xorshift32), fast enough for hundreds of MiB. */
function fill(buf: Uint8Array, seed: number): void {
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
}

async function writeRegions(path: string, size: number, regions: [number, number][], seed: number) {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  await f.truncate(size);
  const buf = new Uint8Array(Math.max(...regions.map(([, len]) => len)));
  for (const [i, [off, len]] of regions.entries()) {
    const chunk = buf.subarray(0, len);
    fill(chunk, seed + i);
    await f.seek(off, Deno.SeekMode.Start);
    let put = 0;
    while (put < len) put += await f.write(chunk.subarray(put));
  }
}

// 600 × 256 KiB spread over 2 GiB; delta: 640 × 16 KiB, half inside the working set.
const BASE_REGIONS: [number, number][] = Array.from(
  { length: 600 },
  (_, i) => [Math.floor((i * 2 * GiB) / 600 / MiB) * MiB, 256 * 1024],
);
const DELTA_REGIONS: [number, number][] = Array.from({ length: 640 }, (_, i) => {
  const inside = i % 2 === 0;
  const [off] = BASE_REGIONS[(i * 7) % BASE_REGIONS.length];
  return [inside ? off + 64 * 1024 : off + 512 * 1024, 16 * 1024];
});

/**
 * Page-cache state of the inputs when a merge starts:
 *   - "hot": both files were just written and are in the page cache;
 *   - "cold": both are on disk only (cache dropped);
 *   - "checkpoint": as at a checkpoint after an OnDemand restore: the delta was just written by
 *     the VMM (in the cache) and of the base only the pages the guest faulted in were read (those
 *     under the delta's regions: the guest faults a page in before it writes it); the rest of the
 *     base's working set was never read by this restore and is on disk.
 */
type CacheState = "hot" | "cold" | "checkpoint";

async function makePair(dir: string, state: CacheState = "hot") {
  await Deno.mkdir(`${dir}/restore-state`, { recursive: true });
  await Deno.mkdir(`${dir}/checkpoint-state`, { recursive: true });
  const base = `${dir}/restore-state/memory-ranges`;
  const delta = `${dir}/checkpoint-state/memory-ranges`;
  await writeRegions(base, 2 * GiB, BASE_REGIONS, 1);
  if (state === "checkpoint") {
    if (!(await dropCaches())) return undefined;
    using f = await Deno.open(base, { read: true });
    const page = new Uint8Array(16 * 1024);
    for (const [off, len] of DELTA_REGIONS) {
      await f.seek(off, Deno.SeekMode.Start);
      await f.read(page.subarray(0, len));
    }
  }
  await writeRegions(delta, 2 * GiB, DELTA_REGIONS, 1000);
  if (state === "cold" && !(await dropCaches())) return undefined;
  return { base, delta };
}

async function allocated(path: string): Promise<number> {
  return ((await Deno.stat(path)).blocks ?? 0) * 512;
}

/**
 * Writes back and drops the page cache (root only), so the next merge reads its inputs from disk as
 * a worker does when the restore source was downloaded long before the checkpoint. Returns false
 * where the cache cannot be dropped.
 */
async function dropCaches(): Promise<boolean> {
  if (Deno.uid() !== 0) return false;
  await new Deno.Command("sync").output();
  try {
    await Deno.writeTextFile("/proc/sys/vm/drop_caches", "1\n");
    return true;
  } catch {
    return false;
  }
}

const CACHE_LABEL: Record<CacheState, string> = {
  hot: "inputs in the page cache",
  cold: "inputs on disk (page cache dropped)",
  checkpoint: "as at a checkpoint: delta just written, base pages the guest faulted in cached",
};

/**
 * The copying merge as upstream's worker does it (MergeSparseOverlay, the strategy the in-place
 * merge replaced there): `cp --sparse=always` of the base, then the delta's regions laid over it.
 */
async function upstreamCopyingMerge(base: string, delta: string, out: string): Promise<void> {
  const cp = await new Deno.Command("cp", { args: ["--sparse=always", base, out] }).output();
  if (!cp.success) {
    throw new Error(`cp --sparse=always failed: ${new TextDecoder().decode(cp.stderr)}`);
  }
  await copyRegions(delta, out);
}

/** The merges compared; each leaves the merged image at the path it returns. */
const MERGES: Record<string, (base: string, delta: string, dir: string) => Promise<string>> = {
  "in-place": async (base, delta) => {
    await mergeDelta(base, delta);
    return delta;
  },
  copying: async (base, delta, dir) => {
    await mergeByCopy(base, delta, `${dir}/merged`);
    return `${dir}/merged`;
  },
  upstream: async (base, delta, dir) => {
    await upstreamCopyingMerge(base, delta, `${dir}/merged`);
    return `${dir}/merged`;
  },
};

async function benchMerge(dir: string, state: CacheState) {
  const times: Record<string, number[]> = {};
  const digests: Record<string, string> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, merge] of Object.entries(MERGES)) {
      await Deno.remove(`${dir}/m`, { recursive: true }).catch(() => {});
      const pair = await makePair(`${dir}/m`, state);
      if (!pair) {
        console.log(
          `merge (${CACHE_LABEL[state]}): skipped, the page cache cannot be dropped here`,
        );
        return;
      }
      const t = performance.now();
      const out = await merge(pair.base, pair.delta, `${dir}/m`);
      (times[name] ??= []).push(performance.now() - t);
      await mergeCleanups();
      if (round === ROUNDS - 1) digests[name] = await sha256OfData(out);
    }
  }
  const [ip, cp, up] = ["in-place", "copying", "upstream"].map((n) => median(times[n]));
  const same = new Set(Object.values(digests)).size === 1;
  console.log(
    `merge 2 GiB base / 150 MiB working set / 10 MiB delta, ${CACHE_LABEL[state]} ` +
      `(median of ${ROUNDS}):\n` +
      `  in-place ${fmtMs(ip)}   copying (ours, the EXDEV fallback) ${fmtMs(cp)}   ratio ` +
      `${(cp / ip).toFixed(1)}× (expected ≥ 10×)\n` +
      `  copying as upstream (cp --sparse=always + overlay) ${fmtMs(up)}   ratio ` +
      `${(up / ip).toFixed(1)}×; same result: ${same ? "yes" : "NO"}`,
  );
}

async function benchSparseCopy(dir: string) {
  await Deno.remove(`${dir}/m`, { recursive: true }).catch(() => {});
  const { base } = (await makePair(`${dir}/m`))!;
  const t = performance.now();
  await sparseCopy(base, `${dir}/m/copy`);
  const ours = performance.now() - t;
  const t2 = performance.now();
  await new Deno.Command("cp", { args: ["--sparse=always", base, `${dir}/m/cp-copy`] }).output();
  const cpTime = performance.now() - t2;
  const src = await allocated(base);
  const copy = await allocated(`${dir}/m/copy`);
  console.log(
    `sparse copy of the 2 GiB / 150 MiB image:\n` +
      `  allocated: source ${(src / MiB).toFixed(1)} MiB, copy ${(copy / MiB).toFixed(1)} MiB, ` +
      `ratio ${(copy / src).toFixed(3)} (expected within 5 %); ` +
      `time ${fmtMs(ours)} (cp --sparse=always ${fmtMs(cpTime)})`,
  );
}

async function makeTree(root: string): Promise<number> {
  let total = 0;
  const buf = new Uint8Array(40 * 1024);
  let seed = 7;
  for (let d = 0; d < 100; d++) {
    await Deno.mkdir(`${root}/d${d}`, { recursive: true });
    for (let f = 0; f < 100; f++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const size = 1 + (seed % (40 * 1024 - 1));
      fill(buf, seed);
      await Deno.writeFile(`${root}/d${d}/f${f}`, buf.subarray(0, size));
      total += size;
    }
  }
  return total;
}

async function benchMkfs(dir: string) {
  const tree = `${dir}/tree`;
  const bytes = await makeTree(tree);
  const ours: number[] = [];
  const bare: number[] = [];
  const phases: string[] = [];
  for (let round = 0; round < MKFS_ROUNDS; round++) {
    const out = `${dir}/ours.ext4`;
    await Deno.remove(out).catch(() => {});
    let t = performance.now();
    const marks: string[] = [];
    let phase = "";
    const result = await buildImage(tree, out, {
      onProgress: (p) => {
        if (p.phase !== phase) {
          marks.push(`${(phase = p.phase)} from ${fmtMs(performance.now() - t)}`);
        }
      },
    });
    ours.push(performance.now() - t);
    phases.push(marks.join(", "));

    const plain = `${dir}/bare.ext4`;
    await Deno.remove(plain).catch(() => {});
    {
      using f = await Deno.open(plain, { write: true, createNew: true });
      await f.truncate(result.geometry.sizeBytes);
    }
    t = performance.now();
    const r = await new Deno.Command("mkfs.ext4", {
      args: [
        "-F",
        "-q",
        "-N",
        String(result.geometry.inodes),
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0",
        "-O",
        FEATURES,
        "-d",
        tree,
        plain,
      ],
    }).output();
    bare.push(performance.now() - t);
    if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  }
  const o = median(ours);
  const b = median(bare);
  const oMin = Math.min(...ours);
  const bMin = Math.min(...bare);
  console.log(
    `rootfs image of 10k files / ${
      (bytes / MiB).toFixed(0)
    } MiB (${MKFS_ROUNDS} rounds, alternating):\n` +
      `  median: buildImage ${fmtMs(o)}   bare mkfs.ext4 -d ${fmtMs(b)}   ratio ${
        (o / b).toFixed(2)
      }\n` +
      `  best:   buildImage ${fmtMs(oMin)}   bare mkfs.ext4 -d ${fmtMs(bMin)}   ratio ` +
      `${(oMin / bMin).toFixed(2)}   (expected ≤ 1.5)\n  buildImage phases (last round): ${
        phases.at(-1)
      }; ` +
      `load average ${
        Deno.loadavg().map((x) => x.toFixed(1)).join(" ")
      } on ${navigator.hardwareConcurrency} CPUs`,
  );
}

/** Runs the three benchmarks in a temp dir under /var/tmp (a disk, not tmpfs) or /tmp. */
export async function run(): Promise<void> {
  const parent = await Deno.stat("/var/tmp").then(() => "/var/tmp", () => undefined);
  const dir = await Deno.makeTempDir({ prefix: "images-bench-", dir: parent });
  try {
    await benchMerge(dir, "checkpoint");
    await benchMerge(dir, "cold");
    await benchMerge(dir, "hot");
    await benchSparseCopy(dir);
    await benchMkfs(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await run();
