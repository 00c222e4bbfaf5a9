/**
 * Merging an OnDemand delta into its base: in place, by copy across filesystems, size checks,
 * crash recovery.
 */
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import {
  mergeByCopy,
  mergeCleanups,
  mergeDelta,
  type MergeStep,
  recoverMerge,
  trashPathOf,
  workPathOf,
} from "./merge.ts";
import {
  allocatedBytes,
  MiB,
  overlayInMemory,
  readAll,
  type Region,
  writeSparse,
} from "../../tests/sparse/testdata.ts";
import { withShmDir } from "../../tests/temp.ts";

const SIZE = 16 * MiB;
// Base: a working set of scattered regions. Delta: pages touched after the restore, some inside
// the base's data, some in its holes, one spanning two 4 MiB copy chunks.
const BASE_REGIONS: Region[] = [
  [0, MiB, 0x11],
  [4 * MiB, 3 * MiB, 0x22],
  [15 * MiB, MiB, 0x33],
];
const DELTA_REGIONS: Region[] = [
  [4096, 8192, 0xa1],
  [9 * MiB, 5 * MiB, 0xa2],
  [15 * MiB, 4096, 0],
];

interface Pair {
  dir: string;
  base: string;
  delta: string;
  baseBytes: Uint8Array;
  deltaBytes: Uint8Array;
  expected: Uint8Array;
}

async function makePair(baseDir?: string): Promise<Pair> {
  const dir = await Deno.makeTempDir({ prefix: "merge-" });
  await Deno.mkdir(`${dir}/restore-state`);
  await Deno.mkdir(`${dir}/checkpoint-state`);
  const base = `${baseDir ?? `${dir}/restore-state`}/memory-ranges`;
  const delta = `${dir}/checkpoint-state/memory-ranges`;
  await writeSparse(base, SIZE, BASE_REGIONS);
  await writeSparse(delta, SIZE, DELTA_REGIONS);
  const baseBytes = await readAll(base);
  const deltaBytes = await readAll(delta);
  const expected = await overlayInMemory(baseBytes, deltaBytes, delta);
  return { dir, base, delta, baseBytes, deltaBytes, expected };
}

async function exists(path: string) {
  return await Deno.lstat(path).then(() => true, () => false);
}

async function assertMerged(p: Pair) {
  assertEquals(await readAll(p.delta), p.expected);
  assert(!(await exists(p.base)), "base consumed");
  assert(!(await exists(workPathOf(p.delta))), "no work file left");
  assert(!(await exists(trashPathOf(p.base))), "no old delta left");
}

Deno.test("mergeDelta: in place, equals the reference overlay byte for byte, stays sparse", async () => {
  const p = await makePair();
  try {
    const baseAlloc = await allocatedBytes(p.base);
    const deltaAlloc = await allocatedBytes(p.delta);
    const result = await mergeDelta(p.base, p.delta);
    assertEquals(result, {
      strategy: "in-place",
      overlaidBytes: 8192 + 5 * MiB + 4096,
      recovered: false,
    });
    await mergeCleanups();
    assertEquals([...Deno.readDirSync(`${p.dir}/checkpoint-state`)].map((e) => e.name), [
      "memory-ranges",
    ]);
    await assertMerged(p);
    assertEquals((await Deno.stat(p.delta)).size, SIZE);
    assert(await allocatedBytes(p.delta) <= baseAlloc + deltaAlloc, "holes stayed holes");
    assert(
      await allocatedBytes(p.delta) <= SIZE - 6 * MiB,
      "the holes [1,4), [7,9), [14,15) MiB stay",
    );
  } finally {
    await Deno.remove(p.dir, { recursive: true });
  }
});

Deno.test("mergeDelta: size mismatch is an error that changes neither file", async () => {
  const p = await makePair();
  try {
    await Deno.truncate(p.delta, SIZE + 4096);
    const deltaBefore = await readAll(p.delta);
    await assertRejects(
      () => mergeDelta(p.base, p.delta),
      /size mismatch \(base 16777216 bytes, delta 16781312 bytes\); both left unchanged/,
    );
    assertEquals(await readAll(p.base), p.baseBytes);
    assertEquals(await readAll(p.delta), deltaBefore);
    assert(!(await exists(workPathOf(p.delta))));
  } finally {
    await Deno.remove(p.dir, { recursive: true });
  }
});

Deno.test("mergeDelta: missing base or delta is an error naming the file", async () => {
  const p = await makePair();
  try {
    await Deno.remove(p.delta);
    await assertRejects(() => mergeDelta(p.base, p.delta), /cannot stat delta .*memory-ranges/);
    assertEquals(await readAll(p.base), p.baseBytes);
  } finally {
    await Deno.remove(p.dir, { recursive: true });
  }
});

const STEPS: MergeStep[] = ["base-moved", "overlay-chunk", "overlaid", "delta-moved"];
const COPY_STEPS: MergeStep[] = [
  "base-copied",
  "base-removed",
  "overlay-chunk",
  "overlaid",
  "delta-removed",
];

class Crash extends Error {}

/** Runs a merge that "crashes" at `step`, checks the on-disk state, then recovers. */
async function crashAt(step: MergeStep, exdev: boolean, recoverWith: "merge" | "recover") {
  const p = await makePair();
  const rename = async (from: string, to: string) => {
    if (exdev && from === p.base) throw Object.assign(new Error("simulated"), { code: "EXDEV" });
    await Deno.rename(from, to);
  };
  try {
    await assertRejects(
      () =>
        mergeDelta(p.base, p.delta, {
          rename,
          afterStep: (s) => {
            if (s === step) throw new Crash(`crash after ${s}`);
          },
        }),
      `crash after ${step}`,
    );
    // The state left: the complete merged file at D, or D untouched plus a base (B, or W holding
    // B with part of D laid over it) that with D denotes exactly the merged image.
    const atDelta = (await exists(p.delta)) ? await readAll(p.delta) : undefined;
    const work = workPathOf(p.delta);
    if (
      atDelta && atDelta.length === p.expected.length && atDelta.every((b, i) =>
        b === p.expected[i]
      ) && !(await exists(work))
    ) {
      // finished
    } else {
      if (atDelta) assertEquals(atDelta, p.deltaBytes, `after ${step}: delta intact`);
      const basePath = (await exists(p.base)) ? p.base : work;
      const denoted = atDelta
        ? await overlayInMemory(await readAll(basePath), p.deltaBytes, p.delta)
        : await readAll(basePath);
      assertEquals(denoted, p.expected, `after ${step}: the pair still denotes the merge`);
    }
    if (recoverWith === "recover") await recoverMerge(p.base, p.delta, { rename });
    if ((await exists(p.base)) || (await exists(work))) {
      await mergeDelta(p.base, p.delta, { rename });
      await mergeCleanups();
    }
    await assertMerged(p);
  } finally {
    await Deno.remove(p.dir, { recursive: true });
  }
}

for (const step of STEPS) {
  Deno.test(`mergeDelta: crash after ${step} recovers to the complete merged file`, async () => {
    await crashAt(step, false, "merge");
    await crashAt(step, false, "recover");
  });
}

for (const step of COPY_STEPS) {
  Deno.test(`mergeDelta (copying): crash after ${step} recovers to the merged file`, async () => {
    await crashAt(step, true, "merge");
  });
}

Deno.test("mergeDelta: EXDEV from the rename falls back to the copying merge", async () => {
  const p = await makePair();
  try {
    let exdevs = 0;
    const result = await mergeDelta(p.base, p.delta, {
      rename: async (from, to) => {
        if (from === p.base) {
          exdevs++;
          throw Object.assign(new Error("simulated cross-device"), { code: "EXDEV" });
        }
        await Deno.rename(from, to);
      },
    });
    assertEquals(exdevs, 1);
    assertEquals(result.strategy, "copy");
    await assertMerged(p);
  } finally {
    await Deno.remove(p.dir, { recursive: true });
  }
});

Deno.test("mergeDelta: a real cross-filesystem pair (base on /dev/shm) merges by copy", async () => {
  await withShmDir("merge-", async (shm) => {
    const p = await makePair(shm);
    try {
      const a = await Deno.stat(shm);
      const b = await Deno.stat(p.dir);
      if (a.dev === b.dev) {
        console.log("skipped: /dev/shm is on the same filesystem as the temp dir");
        return;
      }
      const result = await mergeDelta(p.base, p.delta);
      await mergeCleanups();
      assertEquals(result.strategy, "copy");
      await assertMerged(p);
    } finally {
      await Deno.remove(p.dir, { recursive: true });
    }
  });
});

Deno.test("recoverMerge: a stale work file beside an existing base is removed", async () => {
  const p = await makePair();
  try {
    await Deno.writeTextFile(workPathOf(p.delta), "stale");
    assertEquals(await recoverMerge(p.base, p.delta), false);
    assert(!(await exists(workPathOf(p.delta))));
    await mergeDelta(p.base, p.delta);
    await mergeCleanups();
    await assertMerged(p);
  } finally {
    await Deno.remove(p.dir, { recursive: true });
  }
});

Deno.test("mergeByCopy: writes the overlay to a new file and leaves both inputs", async () => {
  const p = await makePair();
  try {
    const out = `${p.dir}/merged`;
    assertEquals(await mergeByCopy(p.base, p.delta, out), 8192 + 5 * MiB + 4096);
    assertEquals(await readAll(out), p.expected);
    assertEquals(await readAll(p.base), p.baseBytes);
    assertEquals(await readAll(p.delta), p.deltaBytes);
  } finally {
    await Deno.remove(p.dir, { recursive: true });
  }
});
