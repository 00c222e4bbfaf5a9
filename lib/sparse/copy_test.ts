/**
 * Sparse copies on real files: same bytes and extents, holes kept, destinations refused or
 * replaced atomically.
 */
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import {
  copyExtents,
  copyRegions,
  type CopyStats,
  layoutOf,
  sparseCopy,
  sparseCopyReplace,
  withFd,
} from "./copy.ts";
import { O_RDONLY, O_WRONLY, sym, SyscallError } from "../ffi/libc.ts";
import { adviseWillNeed, preadCached } from "../ffi/pio.ts";
import { extents } from "./extents.ts";
import { allocatedBytes, MiB, readAll, writeSparse } from "../../tests/sparse/testdata.ts";
import { withShmDir, withTempDir } from "../../tests/temp.ts";

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

Deno.test("copyExtents: prefetching copies the same bytes, chunk by chunk, dst untouched elsewhere", async () => {
  await withTempDir("sparse-copy-", async (dir) => {
    const size = 24 * MiB;
    await writeSparse(`${dir}/dst`, size, [[0, size, 0x55]]);
    // Many small extents (the merge's shape) plus one spanning several 4 MiB chunks.
    const regions: [number, number, number][] = Array.from(
      { length: 40 },
      (_, i) => [i * 256 * 1024, 16 * 1024, i + 1],
    );
    regions.push([12 * MiB, 9 * MiB, 77]);
    await writeSparse(`${dir}/src`, size, regions);
    const before = await readAll(`${dir}/dst`);
    const src = await readAll(`${dir}/src`);
    const { extents } = layoutOf(`${dir}/src`);
    const chunks: number[] = [];
    const copied = await withFd(
      `${dir}/src`,
      O_RDONLY,
      (s) =>
        withFd(`${dir}/dst`, O_WRONLY, (d) =>
          copyExtents(s, d, extents, {
            prefetch: true,
            onChunk: (n) => void chunks.push(n),
          })),
    );
    assertEquals(copied, 40 * 16 * 1024 + 9 * MiB);
    // One chunk per small extent, three for the 9 MiB one (4 + 4 + 1 MiB).
    assertEquals(chunks.length, 43);
    assertEquals(chunks.at(-1), copied);
    const expected = before.slice();
    for (const [off, len] of regions) expected.set(src.subarray(off, off + len), off);
    assertEquals(await readAll(`${dir}/dst`), expected);
  });
});

Deno.test("adviseWillNeed: a closed fd is a SyscallError naming EBADF", async () => {
  await withTempDir("sparse-copy-", async (dir) => {
    await writeSparse(`${dir}/f`, MiB, [[0, 4096, 1]]);
    const fd = await withFd(`${dir}/f`, O_RDONLY, (fd) => {
      adviseWillNeed(fd, 0, 4096);
      return Promise.resolve(fd);
    });
    try {
      adviseWillNeed(fd, 0, 4096);
      throw new Error("adviseWillNeed on a closed fd did not throw");
    } catch (e) {
      assert(e instanceof SyscallError, String(e));
      assertEquals(e.call, "posix_fadvise");
      assert(e.message.includes("EBADF"), e.message);
    }
  });
});

/** Writes `path` back and asks the kernel to drop its clean pages (posix_fadvise DONTNEED). */
async function evict(path: string): Promise<void> {
  using f = await Deno.open(path, { read: true, write: true });
  await f.syncData();
  await withFd(path, O_RDONLY, (fd) => {
    assertEquals(sym().posix_fadvise(fd, 0n, 0n, 4 /* DONTNEED */), 0);
    return Promise.resolve();
  });
}

Deno.test("preadCached: cached bytes come back exact; evicted ones are not waited for", async () => {
  await withTempDir("sparse-copy-", async (dir) => {
    const path = `${dir}/f`;
    await writeSparse(path, 4 * MiB, [[MiB, 64 * 1024, 9]]);
    const want = (await readAll(path)).subarray(MiB, MiB + 64 * 1024);
    const buf = new Uint8Array(new ArrayBuffer(64 * 1024));
    await withFd(path, O_RDONLY, (fd) => {
      assertEquals(preadCached(fd, buf, MiB), buf.length);
      return Promise.resolve();
    });
    assertEquals(buf, want);
    await evict(path);
    buf.fill(0);
    const n = await withFd(path, O_RDONLY, (fd) => Promise.resolve(preadCached(fd, buf, MiB)));
    // Filesystems that cannot drop the pages (tmpfs) still serve them from memory.
    if (n === 0) assertEquals(buf, new Uint8Array(64 * 1024));
    else assertEquals(buf.subarray(0, n), want.subarray(0, n));
  });
});

Deno.test("copyExtents: a prefetched copy of an uncached source has the same bytes", async () => {
  await withTempDir("sparse-copy-", async (dir) => {
    const size = 16 * MiB;
    const regions: [number, number, number][] = Array.from(
      { length: 30 },
      (_, i) => [i * 512 * 1024, 16 * 1024, i + 3],
    );
    await writeSparse(`${dir}/src`, size, regions);
    await writeSparse(`${dir}/dst`, size, []);
    const { extents } = layoutOf(`${dir}/src`);
    await evict(`${dir}/src`);
    const copied = await withFd(
      `${dir}/src`,
      O_RDONLY,
      (s) => withFd(`${dir}/dst`, O_WRONLY, (d) => copyExtents(s, d, extents, { prefetch: true })),
    );
    assertEquals(copied, 30 * 16 * 1024);
    assertEquals(await readAll(`${dir}/dst`), await readAll(`${dir}/src`));
  });
});

/** Linux ≥ 5.19 refuses copy_file_range between filesystems that do not implement it (EXDEV). */
function kernelRefusesCrossFsCopy(): boolean {
  const [major, minor] = Deno.osRelease().split(".").map(Number);
  return major > 5 || (major === 5 && minor >= 19);
}

Deno.test("copyExtents: inside the kernel on one filesystem, same bytes as through user space", async () => {
  await withTempDir("sparse-copy-", async (dir) => {
    const size = 24 * MiB;
    // 6 MiB crosses a 4 MiB chunk boundary; small scattered regions as in a delta.
    const regions: [number, number, number][] = [
      [0, 4096, 1],
      [MiB + 512, 100, 2],
      [4 * MiB, 6 * MiB, 3],
      [20 * MiB, 16 * 1024, 4],
    ];
    await writeSparse(`${dir}/src`, size, regions);
    const { extents } = layoutOf(`${dir}/src`);
    const results: Record<
      string,
      { copied: number; stats: CopyStats }
    > = {};
    let before: Uint8Array = new Uint8Array();
    for (const userSpace of [false, true]) {
      const dst = `${dir}/dst-${userSpace}`;
      await writeSparse(dst, size, [[MiB, 8192, 0xee]]);
      before = await readAll(dst);
      const stats = { inKernel: 0, userSpace: 0 };
      const copied = await withFd(
        `${dir}/src`,
        O_RDONLY,
        (s) => withFd(dst, O_WRONLY, (d) => copyExtents(s, d, extents, { userSpace, stats })),
      );
      results[String(userSpace)] = { copied, stats };
    }
    const total = extents.reduce((n, [s, e]) => n + e - s, 0);
    assertEquals(results["false"], { copied: total, stats: { inKernel: total, userSpace: 0 } });
    assertEquals(results["true"], { copied: total, stats: { inKernel: 0, userSpace: total } });
    const kernel = await readAll(`${dir}/dst-false`);
    assertEquals(kernel, await readAll(`${dir}/dst-true`));
    // The destination's own bytes outside the source's data blocks are untouched.
    assertEquals(kernel.subarray(MiB + 4096, MiB + 8192), before.subarray(MiB + 4096, MiB + 8192));
    assertEquals(kernel.subarray(0, 4096), (await readAll(`${dir}/src`)).subarray(0, 4096));
  });
});

Deno.test("copyExtents: across filesystems (source on /dev/shm) copies through user space", async () => {
  await withShmDir("copy-", (shm) =>
    withTempDir("sparse-copy-", async (dir) => {
      await writeSparse(`${shm}/src`, 8 * MiB, [[0, 4096, 5], [5 * MiB, 3 * MiB, 6]]);
      await writeSparse(`${dir}/dst`, 8 * MiB, []);
      const { extents } = layoutOf(`${shm}/src`);
      const stats = { inKernel: 0, userSpace: 0 };
      const copied = await withFd(
        `${shm}/src`,
        O_RDONLY,
        (s) => withFd(`${dir}/dst`, O_WRONLY, (d) => copyExtents(s, d, extents, { stats })),
      );
      assertEquals(copied, 4096 + 3 * MiB);
      assertEquals(stats.inKernel + stats.userSpace, copied);
      if (kernelRefusesCrossFsCopy()) assertEquals(stats, { inKernel: 0, userSpace: copied });
      assertEquals(await readAll(`${dir}/dst`), await readAll(`${shm}/src`));
    }));
});
