/**
 * The pure parts of the ext4 build: mkfs argv, ids, geometry, debugfs scripts, used-inode parsing.
 */
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  debugfsErrors,
  fixupScript,
  geometryOf,
  HEADROOM_BYTES,
  idsOf,
  mkfsArgs,
  parseUsedInodes,
  quoteArg,
  timesScript,
} from "./ext4.ts";
import type { Tree, TreeEntry } from "./tree.ts";

const enc = new TextEncoder();

function entry(path: string, kind: TreeEntry["kind"], extra: Partial<TreeEntry> = {}): TreeEntry {
  return { path, kind, perm: 0o644, uid: 0, gid: 0, mtime: 1000, size: 0, xattrs: [], ...extra };
}

function treeOf(entries: TreeEntry[]): Tree {
  return {
    root: "/src",
    entries,
    contentBytes: 0,
    contentBlocksBytes: 0,
    nameBytes: 0,
    maxMtime: 1700000000,
  };
}

Deno.test("mkfsArgs: no journal, eager tables, fixed ids, explicit geometry and features", () => {
  assertEquals(
    mkfsArgs({
      src: "/b/rootfs",
      image: "/d/.img.building-1-1",
      geometry: { sizeBytes: 600 * 1024 * 1024, inodes: 9000 },
      uuid: "u",
      hashSeed: "h",
      rootUid: 1000,
      rootGid: 100,
    }),
    [
      "-F",
      "-q",
      "-t",
      "ext4",
      "-b",
      "4096",
      "-I",
      "256",
      "-N",
      "9000",
      "-m",
      "0",
      "-U",
      "u",
      "-E",
      "hash_seed=h,lazy_itable_init=0,lazy_journal_init=0,root_owner=1000:100",
      "-O",
      "^has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize",
      "-d",
      "/b/rootfs",
      "/d/.img.building-1-1",
      "614400k",
    ],
  );
});

Deno.test("idsOf: a fixed, well-formed UUID and hash seed per key", () => {
  const a = idsOf("00".repeat(32));
  assertEquals(a, idsOf("00".repeat(32)));
  assertMatch(a.uuid);
  assertMatch(a.hashSeed);
  assert(a.uuid !== a.hashSeed);
  assert(idsOf("11".repeat(32)).uuid !== a.uuid);
});

function assertMatch(uuid: string) {
  assert(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid), uuid);
}

Deno.test("geometryOf: deterministic, grows with content and entries, keeps the headroom", () => {
  const small = treeOf([entry("", "dir"), entry("a", "file", { size: 10 })]);
  const g = geometryOf({ ...small, contentBlocksBytes: 4096, nameBytes: 1 });
  assertEquals(g, geometryOf({ ...small, contentBlocksBytes: 4096, nameBytes: 1 }));
  assertEquals(g.inodes, 2 + 1 + 8192);
  assert(g.sizeBytes >= HEADROOM_BYTES + 4096);
  assertEquals(g.sizeBytes % (1024 * 1024), 0);
  const bigger = geometryOf({ ...small, contentBlocksBytes: 100 * 1024 * 1024, nameBytes: 1 });
  assert(bigger.sizeBytes >= g.sizeBytes + 100 * 1024 * 1024);
  const many = treeOf(Array.from({ length: 1000 }, (_, i) => entry(`f${i}`, "file")));
  assertEquals(geometryOf({ ...many, nameBytes: 4000 }).inodes, 1000 + 250 + 8192);
});

Deno.test("quoteArg: double quotes, doubled quote; line breaks refused", () => {
  assertEquals(quoteArg("/a b"), '"/a b"');
  assertEquals(quoteArg('/c"d'), '"/c""d"');
  assertThrows(() => quoteArg("/x\ny"), /line break/);
});

Deno.test("fixupScript: root mode/mtime, sorted xattrs re-set, resolv.conf written", () => {
  const tree = treeOf([
    entry("", "dir", { perm: 0o750, mtime: 1234 }),
    entry("etc", "dir", { perm: 0o755 }),
    entry("etc/resolv.conf", "symlink", { target: "../run/resolv.conf" }),
    entry("one", "file", { xattrs: [["user.a", enc.encode("1")]] }),
    entry("two x", "file", {
      xattrs: [["security.s", enc.encode("s")], ["user.b", enc.encode("b")]],
    }),
  ]);
  const { script, files } = fixupScript({
    tree,
    fakeTime: 1700000000,
    dir: "/w",
    resolvConf: { bytes: enc.encode("nameserver 10.0.0.10\n") },
  });
  assertEquals(
    script,
    [
      "sif <2> mode 040750",
      "sif <2> mtime @1234",
      'ea_rm "/two x" "security.s" "user.b"',
      'ea_set -f "/w/xattr-0" "/two x" "security.s"',
      'ea_set -f "/w/xattr-1" "/two x" "user.b"',
      "rm /etc/resolv.conf",
      'write "/w/resolv.conf" /etc/resolv.conf',
      "sif /etc/resolv.conf mode 0100644",
      "sif /etc/resolv.conf uid 0",
      "sif /etc/resolv.conf gid 0",
      "sif /etc/resolv.conf mtime @1700000000",
      "sif /etc/resolv.conf atime @1700000000",
      "sif /etc/resolv.conf ctime @1700000000",
      "",
    ].join("\n"),
  );
  assertEquals(files.map((f) => f.name), ["/w/xattr-0", "/w/xattr-1", "/w/resolv.conf"]);
});

Deno.test("fixupScript: creates /etc when missing; refuses a non-directory /etc", () => {
  const bare = treeOf([entry("", "dir", { perm: 0o755 })]);
  const { script } = fixupScript({
    tree: bare,
    fakeTime: 5,
    dir: "/w",
    resolvConf: { bytes: enc.encode("x") },
  });
  assert(script.includes("mkdir /etc\nsif /etc mode 040755\nsif /etc uid 0\nsif /etc gid 0\n"));
  assert(!script.includes("rm /etc/resolv.conf"));
  const linked = treeOf([entry("", "dir"), entry("etc", "symlink", { target: "/x" })]);
  assertThrows(
    () =>
      fixupScript({ tree: linked, fakeTime: 5, dir: "/w", resolvConf: { bytes: enc.encode("x") } }),
    "/etc in the bundle is a symlink",
  );
});

Deno.test("timesScript: atime and ctime of the root and non-reserved inodes", () => {
  assertEquals(
    timesScript([1, 2, 7, 11, 12], 99),
    [2, 11, 12].flatMap((i) => [`sif <${i}> atime @99`, `sif <${i}> ctime @99`]).join("\n") +
      "\n",
  );
});

Deno.test("parseUsedInodes: complement of the free ranges per group", () => {
  const dump = `Inode count:              16
Inodes per group:         8
Group 0: (Blocks 0-32767) csum 0x1234 [ITABLE_ZEROED]
  Free inodes: 4-5, 8
Group 1: (Blocks 32768-65535) csum 0x5678 [INODE_UNINIT]
  Free inodes: 10-16
`;
  assertEquals(parseUsedInodes(dump), [1, 2, 3, 6, 7, 9]);
  assertThrows(() => parseUsedInodes("nothing"), /Inodes per group/);
});

Deno.test("debugfsErrors: everything on stderr but the banner", () => {
  assertEquals(debugfsErrors("debugfs 1.47.0 (5-Feb-2023)\n"), []);
  assertEquals(
    debugfsErrors("debugfs 1.47.0 (5-Feb-2023)\nsif: File not found by ext2_lookup while x\n"),
    ["sif: File not found by ext2_lookup while x"],
  );
});
