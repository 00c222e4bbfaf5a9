/**
 * The rootfs tree walk: byte-wise name order, entries with metadata, and the content and metadata
 * hashes.
 */
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { setXattr } from "../ffi/xattr.ts";
import { compareNames, entryRecord, hashTree, metadataHash, scanTree } from "./tree.ts";

const enc = new TextEncoder();

async function withTree(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "rootfs-tree-" });
  try {
    await Deno.mkdir(`${dir}/t/sub`, { recursive: true });
    await Deno.writeTextFile(`${dir}/t/b`, "bee");
    await Deno.writeTextFile(`${dir}/t/a`, "ay");
    await Deno.writeTextFile(`${dir}/t/sub/c`, "sea");
    await Deno.symlink("a", `${dir}/t/link`);
    await Deno.link(`${dir}/t/a`, `${dir}/t/sub/hard`);
    setXattr(`${dir}/t/b`, "user.k", enc.encode("v"));
    for (const p of ["b", "a", "sub/c", "sub", ""]) await Deno.utime(`${dir}/t/${p}`, 5, 1000);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function hashOf(root: string) {
  return await hashTree(await scanTree(root));
}

Deno.test("compareNames: C-locale byte order, also for astral characters", () => {
  const names = ["b", "a", "B", "é", "\u{1F600}", "\uFFFD", "a b", "ab"];
  assertEquals(names.sort(compareNames), ["B", "a", "a b", "ab", "b", "é", "\uFFFD", "\u{1F600}"]);
});

Deno.test("scanTree: sorted depth-first entries with links, targets, sizes and xattrs", async () => {
  await withTree(async (dir) => {
    const tree = await scanTree(`${dir}/t`);
    assertEquals(tree.entries.map((e) => e.path), [
      "",
      "a",
      "b",
      "link",
      "sub",
      "sub/c",
      "sub/hard",
    ]);
    const [root, a, b, link, , , hard] = tree.entries;
    assertEquals([root.kind, a.kind, link.kind], ["dir", "file", "symlink"]);
    assertEquals(link.target, "a");
    assertEquals(hard.linkOf, "a");
    assertEquals(b.xattrs, [["user.k", enc.encode("v")]]);
    assertEquals(tree.contentBytes, 2 + 3 + 3);
    assertEquals(tree.contentBlocksBytes, 3 * 4096);
    assertEquals(
      entryRecord(b),
      `["b","file",${b.perm},0,0,1000,"size",3,[["user.k","76"]]]\n`,
    );
  });
});

Deno.test("hashTree: ignores atime and ctime; changes with a byte, mode, mtime, xattr, link", async () => {
  await withTree(async (dir) => {
    const root = `${dir}/t`;
    const base = await hashOf(root);
    await Deno.utime(`${root}/a`, 999_999, 1000); // atime only; ctime changes too
    await Deno.chmod(`${root}/sub`, (await Deno.stat(`${root}/sub`)).mode! & 0o7777);
    await Deno.utime(`${root}/sub`, 5, 1000);
    assertEquals(await hashOf(root), base);

    const seen = new Set([base]);
    const changes: [string, () => Promise<void>][] = [
      [
        "byte",
        () =>
          Deno.writeTextFile(`${root}/sub/c`, "see").then(() =>
            Deno.utime(`${root}/sub/c`, 5, 1000)
          ),
      ],
      ["mode", () => Deno.chmod(`${root}/b`, 0o600)],
      ["mtime", () => Deno.utime(`${root}/b`, 5, 2000)],
      ["xattr", () => Promise.resolve(setXattr(`${root}/b`, "user.k", enc.encode("w")))],
      ["owner", () => Deno.chown(`${root}/b`, 1234, 1234)],
      [
        "symlink target",
        () => Deno.remove(`${root}/link`).then(() => Deno.symlink("b", `${root}/link`)),
      ],
      [
        "hard link",
        () =>
          Deno.remove(`${root}/sub/hard`).then(() => Deno.link(`${root}/b`, `${root}/sub/hard`)),
      ],
      ["name", () => Deno.rename(`${root}/sub/c`, `${root}/sub/d`)],
    ];
    for (const [what, change] of changes) {
      if (what === "owner" && Deno.uid() !== 0) continue;
      await change();
      for (const p of ["sub", ""]) await Deno.utime(`${root}/${p}`, 5, 1000);
      const h = await hashOf(root);
      assert(!seen.has(h), `${what} changes the hash`);
      seen.add(h);
    }
  });
});

Deno.test("metadataHash: file bytes do not enter it, metadata does", async () => {
  await withTree(async (dir) => {
    const before = await scanTree(`${dir}/t`);
    const bytesBefore = await hashTree(before);
    await Deno.writeTextFile(`${dir}/t/b`, "BEE");
    await Deno.utime(`${dir}/t/b`, 5, 1000);
    const after = await scanTree(`${dir}/t`);
    assertEquals(metadataHash(after), metadataHash(before));
    assert(await hashTree(after) !== bytesBefore);
  });
});

Deno.test("scanTree: missing, non-directory and unreadable sources are one-line errors", async () => {
  await withTree(async (dir) => {
    await assertRejects(() => scanTree(`${dir}/none`), /^source directory .*none does not exist/);
    await assertRejects(() => scanTree(`${dir}/t/a`), /^source .*t\/a is not a directory/);
  });
});
