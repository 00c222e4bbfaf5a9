/**
 * Sparse copies on real files: same bytes and extents, holes kept, destinations refused or
 * replaced atomically.
 */
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { copyRegions, sparseCopy, sparseCopyReplace } from "./copy.ts";
import { extents } from "./extents.ts";
import { allocatedBytes, MiB, readAll, writeSparse } from "../../tests/sparse/testdata.ts";
import { withTempDir } from "../../tests/temp.ts";

/** The data extents of `path`, as [start, end) pairs. */
const extentsOf = (path: string) => Array.fromAsync(extents(path));

Deno.test("sparseCopy: same bytes, same size, same data extents, holes stay holes", async () => {
  await withTempDir("sparse-copy-", async (dir) => {
    const src = `${dir}/src`;
    // 9 MiB region spans several 4 MiB chunks; the file ends in a hole.
    await writeSparse(src, 64 * MiB, [[0, 4096, 1], [5 * MiB, 9 * MiB, 2], [40 * MiB, 12345, 3]]);
    const copied = await sparseCopy(src, `${dir}/dst`);
    assertEquals(copied, 4096 + 9 * MiB + 16384);
    assertEquals((await Deno.stat(`${dir}/dst`)).size, 64 * MiB);
    assertEquals(await readAll(`${dir}/dst`), await readAll(src));
    assertEquals(await extentsOf(`${dir}/dst`), await extentsOf(src));
    assertEquals(await allocatedBytes(`${dir}/dst`), await allocatedBytes(src));
  });
});

Deno.test("sparseCopy: all-hole and empty files copy to files without data", async () => {
  await withTempDir("sparse-copy-", async (dir) => {
    await writeSparse(`${dir}/holes`, 8 * MiB, []);
    await writeSparse(`${dir}/empty`, 0, []);
    assertEquals(await sparseCopy(`${dir}/holes`, `${dir}/holes2`), 0);
    assertEquals(await sparseCopy(`${dir}/empty`, `${dir}/empty2`), 0);
    assertEquals((await Deno.stat(`${dir}/holes2`)).size, 8 * MiB);
    assertEquals(await allocatedBytes(`${dir}/holes2`), 0);
    assertEquals((await Deno.stat(`${dir}/empty2`)).size, 0);
  });
});

Deno.test("sparseCopy: refuses an existing destination and leaves it alone", async () => {
  await withTempDir("sparse-copy-", async (dir) => {
    await writeSparse(`${dir}/src`, MiB, [[0, 10, 1]]);
    await Deno.writeTextFile(`${dir}/dst`, "keep");
    await assertRejects(() => sparseCopy(`${dir}/src`, `${dir}/dst`), /exists/i);
    assertEquals(await Deno.readTextFile(`${dir}/dst`), "keep");
  });
});

Deno.test("sparseCopyReplace: replaces the destination and leaves no temp file", async () => {
  await withTempDir("sparse-copy-", async (dir) => {
    await writeSparse(`${dir}/src`, 2 * MiB, [[MiB, 100, 9]]);
    await Deno.writeTextFile(`${dir}/dst`, "old");
    await sparseCopyReplace(`${dir}/src`, `${dir}/dst`);
    assertEquals(await readAll(`${dir}/dst`), await readAll(`${dir}/src`));
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["dst", "src"]);
  });
});

Deno.test("copyRegions: writes src's data regions only, other dst bytes untouched", async () => {
  await withTempDir("sparse-copy-", async (dir) => {
    const size = 16 * MiB;
    await writeSparse(`${dir}/dst`, size, [[0, size, 0x55]]);
    await writeSparse(`${dir}/src`, size, [[MiB, 4096, 1], [6 * MiB, 5 * MiB, 2]]);
    const before = await readAll(`${dir}/dst`);
    const src = await readAll(`${dir}/src`);
    const copied = await copyRegions(`${dir}/src`, `${dir}/dst`);
    assertEquals(copied, 4096 + 5 * MiB);
    const expected = before.slice();
    expected.set(src.subarray(MiB, MiB + 4096), MiB);
    expected.set(src.subarray(6 * MiB, 11 * MiB), 6 * MiB);
    const after = await readAll(`${dir}/dst`);
    assert(after.length === size);
    assertEquals(after, expected);
  });
});
