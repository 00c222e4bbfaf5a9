/** Data extents of sparse, all-hole and all-data files (SEEK_DATA/SEEK_HOLE). */
import { assertEquals } from "../../tests/assert.ts";
import { dataBytes, extents } from "./extents.ts";

const MiB = 1024 * 1024;

async function collect(path: string) {
  const out: [number, number][] = [];
  for await (const [s, e] of extents(path)) out.push([s, e]);
  return out;
}

async function sparseFile(size: number, regions: [number, number][]): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "extents-" });
  const f = await Deno.open(path, { write: true });
  await f.truncate(size);
  for (const [off, len] of regions) {
    await f.seek(off, Deno.SeekMode.Start);
    await f.write(new Uint8Array(len).fill(0xab));
  }
  f.close();
  return path;
}

Deno.test("extents: data regions of a sparse file, in order", async () => {
  const path = await sparseFile(16 * MiB, [[1 * MiB, 4096], [8 * MiB, 2 * MiB]]);
  try {
    assertEquals(await collect(path), [[1 * MiB, 1 * MiB + 4096], [8 * MiB, 10 * MiB]]);
    assertEquals(await dataBytes(path), 4096 + 2 * MiB);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("extents: all-hole file has none, data up to EOF ends at size", async () => {
  const holes = await sparseFile(4 * MiB, []);
  const tail = await sparseFile(3 * MiB, [[3 * MiB - 100, 100]]);
  const empty = await sparseFile(0, []);
  try {
    assertEquals(await collect(holes), []);
    assertEquals(await collect(tail), [[3 * MiB - 4096, 3 * MiB]]);
    assertEquals(await collect(empty), []);
  } finally {
    await Promise.all([holes, tail, empty].map((p) => Deno.remove(p)));
  }
});

Deno.test("extents: all-data file is one extent", async () => {
  const path = await Deno.makeTempFile();
  await Deno.writeFile(path, new Uint8Array(100_000).fill(1));
  try {
    assertEquals(await collect(path), [[0, 100_000]]);
  } finally {
    await Deno.remove(path);
  }
});
