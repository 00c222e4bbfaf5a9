/**
 * The golden rootfs template: saved once as a sparse copy, reset restores the disk, a failed reset
 * changes nothing.
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { allocatedBytes, MiB, readAll, writeSparse } from "../../tests/sparse/testdata.ts";
import { resetFromGolden, saveGolden } from "./golden.ts";

Deno.test("golden: saved once as a verbatim sparse copy; reset restores the disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "golden-" });
  try {
    const disk = `${dir}/actor-rootfs.ext4`;
    const golden = `${dir}/golden-rootfs.ext4`;
    await writeSparse(disk, 64 * MiB, [[0, MiB, 1], [40 * MiB, 3 * MiB, 2]]);
    const original = await readAll(disk);
    assertEquals(await saveGolden(disk, golden), true);
    assertEquals(await readAll(golden), original);
    assertEquals(await allocatedBytes(golden), await allocatedBytes(disk));

    // The actor writes to its disk; a second save keeps the first template.
    {
      using f = await Deno.open(disk, { write: true });
      await f.seek(20 * MiB, Deno.SeekMode.Start);
      await f.write(new Uint8Array(4096).fill(9));
    }
    assertEquals(await saveGolden(disk, golden), false);
    assertEquals(await readAll(golden), original);

    await resetFromGolden(golden, disk);
    assertEquals(await readAll(disk), original);
    assertEquals(await allocatedBytes(disk), await allocatedBytes(golden));
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "actor-rootfs.ext4",
      "golden-rootfs.ext4",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("golden: a failed reset leaves the disk as it was", async () => {
  const dir = await Deno.makeTempDir({ prefix: "golden-" });
  try {
    await Deno.writeTextFile(`${dir}/disk`, "live");
    let err: Error | undefined;
    await resetFromGolden(`${dir}/missing`, `${dir}/disk`).catch((e) => (err = e));
    assert(err && /resetting rootfs .*disk from golden .*missing/.test(err.message), err?.message);
    assertEquals(await Deno.readTextFile(`${dir}/disk`), "live");
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["disk"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
