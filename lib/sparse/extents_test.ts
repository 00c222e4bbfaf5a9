/** Data extents of sparse, all-hole and all-data files (SEEK_DATA/SEEK_HOLE). */
import { assertEquals } from "../../tests/assert.ts";
import { dataBytes, extents } from "./extents.ts";
import { MiB, writeSparse } from "../../tests/sparse/testdata.ts";

/** The data extents of `path`, as [start, end) pairs. */
const extentsOf = (path: string) => Array.fromAsync(extents(path));

/** A new temp file of `size` bytes with data only in `regions` ([offset, length] pairs). */
async function sparseFile(size: number, regions: [number, number][]): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "extents-" });
  await writeSparse(path, size, regions.map(([off, len]) => [off, len, 0xab]));
  return path;
}

Deno.test("extents: data regions of a sparse file, in order", async () => {
  const path = await sparseFile(16 * MiB, [[1 * MiB, 4096], [8 * MiB, 2 * MiB]]);
  try {
    assertEquals(await extentsOf(path), [[1 * MiB, 1 * MiB + 4096], [8 * MiB, 10 * MiB]]);
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
    assertEquals(await extentsOf(holes), []);
    assertEquals(await extentsOf(tail), [[3 * MiB - 4096, 3 * MiB]]);
    assertEquals(await extentsOf(empty), []);
  } finally {
    await Promise.all([holes, tail, empty].map((p) => Deno.remove(p)));
  }
});

Deno.test("extents: all-data file is one extent", async () => {
  const path = await Deno.makeTempFile();
  await Deno.writeFile(path, new Uint8Array(100_000).fill(1));
  try {
    assertEquals(await extentsOf(path), [[0, 100_000]]);
  } finally {
    await Deno.remove(path);
  }
});
