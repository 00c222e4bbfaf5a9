/**
 * buildImage end to end with mkfs.ext4: reproducible images, reuse, shared builds, failures leave
 * nothing.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "../../tests/assert.ts";
import {
  createTree,
  debugfs,
  debugfsCat,
  debugfsStat,
  debugfsXattrs,
  fsck,
  ROOT,
  sha256File,
  sha256OfData,
  type Spec,
  variedTree,
} from "../../tests/rootfs/fixtures.ts";
import { dataBytes } from "../sparse/extents.ts";
import { getXattr } from "../ffi/xattr.ts";
import { buildImage, type BuildProgress, buildStats, KEY_XATTR, recordedKey } from "./build.ts";
import { HEADROOM_BYTES } from "./ext4.ts";
import { withTempDir } from "../../tests/temp.ts";

const isRoot = Deno.uid() === 0;
const MiB = 1024 * 1024;
const enc = new TextEncoder();

async function makeTree(dir: string, name: string, opts: { reverse?: boolean; atime?: number }) {
  const root = `${dir}/${name}`;
  await Deno.mkdir(root);
  await createTree(root, variedTree(), opts);
  return root;
}

function listDir(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

// debugfs `stat` prints the type as a word and the mode as permission bits.
const TYPES: Record<string, string> = {
  dir: "directory",
  file: "regular",
  symlink: "symlink",
  chardev: "character",
  blockdev: "block",
  fifo: "FIFO",
};

Deno.test({
  name:
    "buildImage: e2fsck clean; debugfs shows every file, mode, owner, link, device, xattr, mtime",
  ignore: !isRoot,
  async fn() {
    await withTempDir("rootfs-build-", async (dir) => {
      const src = await makeTree(dir, "src", {});
      const image = `${dir}/out.ext4`;
      const result = await buildImage(src, image, { verify: true });
      assertEquals(result.outcome, "built");
      const check = await fsck(image);
      assertEquals(check.code, 0, check.output);

      const root = await debugfsStat(image, "/");
      assertEquals([root.inode, root.mode, root.uid, root.gid], [2, ROOT.perm, ROOT.uid, ROOT.gid]);
      assertEquals(root.mtime, ROOT.mtime);
      assertEquals(await debugfsXattrs(image, "/"), [
        'user.root-a (1) = "1"',
        'user.root-b (1) = "2"',
      ]);
      const specs = variedTree();
      const byPath = new Map(specs.map((s) => [s.path, s]));
      for (const s of specs) {
        const st = await debugfsStat(image, `/${s.path}`);
        const want = s.kind === "link" ? byPath.get(s.of)! : s;
        if (s.kind === "link") {
          assertEquals(st.inode, (await debugfsStat(image, `/${s.of}`)).inode, "hard link shares");
          assertEquals(st.links, 2);
          continue;
        }
        assertEquals(st.mtime, (want as { mtime: number }).mtime, `${s.path} mtime`);
        assertEquals(st.atime, st.ctime, `${s.path} atime/ctime normalised`);
        assertEquals(st.type, TYPES[s.kind], `${s.path} type`);
        if (s.kind === "dir" || s.kind === "file") {
          assertEquals(st.mode, s.perm, `${s.path} mode`);
          assertEquals([st.uid, st.gid], [s.uid ?? 0, s.gid ?? 0], `${s.path} owner`);
        }
        if (s.kind === "file") {
          assertEquals(await debugfsCat(image, `/${s.path}`), s.bytes, `${s.path} bytes`);
          const expected = [...(s.xattrs ?? [])].sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([n, v]) => `${n} (${v.length}) = "${v}"`);
          assertEquals(await debugfsXattrs(image, `/${s.path}`), expected, `${s.path} xattrs`);
        }
        if (s.kind === "symlink") {
          assertEquals(st.mode, 0o777);
          const target = st.fastLink ??
            new TextDecoder().decode(await debugfsCat(image, `/${s.path}`));
          assertEquals(target, s.target);
        }
        if (s.kind === "chardev" || s.kind === "blockdev") {
          const hex = (n: number) => n.toString(16).padStart(2, "0");
          assertEquals(st.device, `${hex(s.major)}:${hex(s.minor)}`);
        }
      }
      // No journal, ≥ 512 MiB free, sparse.
      const header = await debugfs(image, "stats");
      assert(
        !/has_journal/.test(
          header.split("\n").find((l) => l.startsWith("Filesystem features")) ?? "",
        ),
      );
      const free = Number(/Free blocks:\s+(\d+)/.exec(header)?.[1]) * 4096;
      assert(free >= HEADROOM_BYTES, `free ${free} bytes`);
      assertEquals((await Deno.stat(image)).size, result.geometry.sizeBytes);
      assert(await dataBytes(image) < 64 * MiB, "image stays sparse");
      assertEquals(listDir(dir), ["out.ext4", "src"]);
    });
  },
});

Deno.test({
  name: "buildImage: trees created in different orders and atimes give sha256-identical images",
  ignore: !isRoot,
  async fn() {
    await withTempDir("rootfs-build-", async (dir) => {
      const a = await makeTree(dir, "a", { atime: 1_000_000_000 });
      const b = await makeTree(dir, "b", { reverse: true, atime: 1_200_000_000 });
      await Deno.mkdir(`${dir}/elsewhere`);
      const ra = await buildImage(a, `${dir}/a.ext4`);
      const rb = await buildImage(b, `${dir}/elsewhere/b.ext4`);
      assertEquals(rb.key, ra.key);
      assertEquals((await fsck(`${dir}/a.ext4`)).code, 0);
      assertEquals(await sha256File(`${dir}/elsewhere/b.ext4`), await sha256File(`${dir}/a.ext4`));

      // A changed byte, mode or mtime changes the key and the image.
      const changes: [string, () => Promise<void>][] = [
        ["byte", async () => {
          using f = await Deno.open(`${b}/etc/hosts`, { write: true });
          await f.write(enc.encode("8"));
          await Deno.utime(`${b}/etc/hosts`, 1, 1_600_000_011);
        }],
        ["mode", () => Deno.chmod(`${b}/etc/hosts`, 0o600)],
        ["mtime", () => Deno.utime(`${b}/etc/hosts`, 1, 1_600_000_099)],
      ];
      let previous = await sha256OfData(`${dir}/a.ext4`);
      const keys = new Set([ra.key]);
      for (const [what, change] of changes) {
        await change();
        const r = await buildImage(b, `${dir}/elsewhere/b.ext4`);
        assertEquals(r.outcome, "built", what);
        assertEquals((await fsck(`${dir}/elsewhere/b.ext4`)).code, 0, what);
        assert(!keys.has(r.key), `${what} changes the key`);
        keys.add(r.key);
        const sha = await sha256OfData(`${dir}/elsewhere/b.ext4`);
        assert(sha !== previous, `${what} changes the image`);
        previous = sha;
      }
    });
  },
});

Deno.test({
  name: "buildImage: skipped when the image exists for the same content, rebuilt once written",
  ignore: !isRoot,
  async fn() {
    await withTempDir("rootfs-build-", async (dir) => {
      const src = await makeTree(dir, "src", {});
      const image = `${dir}/out.ext4`;
      // A temp file left by a dead builder (pid 0 never runs one) is swept by the next build.
      await Deno.writeTextFile(`${dir}/.out.ext4.building-0-1`, "stale");
      const first = await buildImage(src, image);
      assertEquals(listDir(dir), ["out.ext4", "src"]);
      assertEquals((await fsck(image)).code, 0);
      assertEquals(await recordedKey(image), first.key);
      const runs = buildStats.mkfsRuns;
      const again = await buildImage(src, image);
      assertEquals([again.outcome, again.key, buildStats.mkfsRuns], ["existing", first.key, runs]);
      // An image written since its build (an actor's disk) is not reused.
      {
        using f = await Deno.open(image, { write: true });
        await f.seek(100 * MiB, Deno.SeekMode.Start);
        await f.write(enc.encode("guest write"));
      }
      assertEquals(await recordedKey(image), undefined);
      const rebuilt = await buildImage(src, image);
      assertEquals([rebuilt.outcome, buildStats.mkfsRuns], ["built", runs + 1]);
      const tag = new TextDecoder().decode(getXattr(image, KEY_XATTR));
      assertMatch(tag, new RegExp(`^${rebuilt.key} ${rebuilt.geometry.sizeBytes} \\d+$`));
    });
  },
});

Deno.test({
  name: "buildImage: concurrent requests share one mkfs; a cancelled caller does not stop it",
  ignore: !isRoot,
  async fn() {
    await withTempDir("rootfs-build-", async (dir) => {
      const src = await makeTree(dir, "src", {});
      const image = `${dir}/out.ext4`;
      const runs = buildStats.mkfsRuns;
      const [x, y] = await Promise.all([buildImage(src, image), buildImage(src, image)]);
      assertEquals([x.outcome, y.outcome].sort(), ["built", "joined"]);
      assertEquals(buildStats.mkfsRuns, runs + 1);

      // Cancel a caller as soon as mkfs has started; a retry joins the same build.
      await Deno.remove(image);
      const controller = new AbortController();
      const phases: BuildProgress["phase"][] = [];
      const cancelled = buildImage(src, image, {
        signal: controller.signal,
        onProgress: (p) => {
          phases.push(p.phase);
          if (p.phase === "mkfs") controller.abort(new Error("caller went away"));
        },
      });
      await assertRejects(() => cancelled, "caller went away");
      const retry = await buildImage(src, image, { verify: true });
      assert(retry.outcome === "joined" || retry.outcome === "existing", retry.outcome);
      assertEquals(buildStats.mkfsRuns, runs + 2);
      assertEquals((await fsck(image)).code, 0);
      assertEquals(retry.key, x.key);
      assert(phases.includes("mkfs"));
    });
  },
});

Deno.test({
  name: "buildImage: mkfs failure leaves neither output nor temp file",
  ignore: !isRoot,
  async fn() {
    await withTempDir("rootfs-build-", async (dir) => {
      const src = await makeTree(dir, "src", {});
      await Deno.mkdir(`${dir}/out`);
      await assertRejects(
        () => buildImage(src, `${dir}/out/img`, { tools: { mkfs: "/bin/false" } }),
        /mkfs\.ext4 failed for .*src \(exit 1\)/,
      );
      assertEquals(listDir(`${dir}/out`), []);
    });
  },
});

Deno.test("buildImage: a missing source is a one-line error and writes nothing", async () => {
  await withTempDir("rootfs-build-", async (dir) => {
    const err = await assertRejects(
      () => buildImage(`${dir}/nope`, `${dir}/img`),
      /^source directory .*nope does not exist; pass the bundle's rootfs directory$/,
    );
    assert(!err.message.includes("\n"));
    assertEquals(listDir(dir), []);
  });
});

Deno.test({
  name: "buildImage: resolv.conf is written into the image, the bundle is untouched",
  ignore: !isRoot,
  async fn() {
    await withTempDir("rootfs-build-", async (dir) => {
      const specs: Spec[] = variedTree().filter((s) => s.path !== "etc/hosts");
      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await createTree(src, specs);
      await Deno.writeTextFile(`${src}/etc/resolv.conf`, "nameserver 1.1.1.1\n");
      await Deno.utime(`${src}/etc`, 1, 1_600_000_002);
      const dns = `${dir}/host-resolv.conf`;
      await Deno.writeTextFile(dns, "nameserver 10.96.0.10\nsearch svc.cluster.local\n");
      const r1 = await buildImage(src, `${dir}/1.ext4`, { resolvConf: dns, verify: true });
      assertEquals(
        new TextDecoder().decode(await debugfsCat(`${dir}/1.ext4`, "/etc/resolv.conf")),
        "nameserver 10.96.0.10\nsearch svc.cluster.local\n",
      );
      const st = await debugfsStat(`${dir}/1.ext4`, "/etc/resolv.conf");
      assertEquals([st.type, st.mode, st.uid, st.gid], ["regular", 0o644, 0, 0]);
      assertEquals(await Deno.readTextFile(`${src}/etc/resolv.conf`), "nameserver 1.1.1.1\n");
      assertEquals((await fsck(`${dir}/1.ext4`)).code, 0);
      // Deterministic, and part of the key.
      const r2 = await buildImage(src, `${dir}/2.ext4`, { resolvConf: dns });
      assertEquals(await sha256File(`${dir}/2.ext4`), await sha256File(`${dir}/1.ext4`));
      const plain = await buildImage(src, `${dir}/3.ext4`);
      assert(plain.key !== r1.key && r1.key === r2.key);

      // A bundle without /etc gets one.
      const bare = `${dir}/bare`;
      await Deno.mkdir(bare);
      await Deno.writeTextFile(`${bare}/x`, "x");
      await buildImage(bare, `${dir}/4.ext4`, { resolvConf: dns, verify: true });
      assertEquals((await debugfsStat(`${dir}/4.ext4`, "/etc")).mode, 0o755);
      assertEquals(
        new TextDecoder().decode(await debugfsCat(`${dir}/4.ext4`, "/etc/resolv.conf")),
        "nameserver 10.96.0.10\nsearch svc.cluster.local\n",
      );
      assertEquals(listDir(bare), ["x"]);
    });
  },
});
