/**
 * Pure pieces of the ext4 image build: geometry, ids, the mkfs.ext4 argv and environment, the
 * debugfs scripts that normalise what mkfs copies non-deterministically, and the dumpe2fs
 * parser. No I/O here; lib/rootfs/build.ts runs them.
 *
 * What makes the image byte-for-byte reproducible (e2fsprogs 1.47):
 *   - `-U` and `-E hash_seed=` fixed (derived from the image key), `E2FSPROGS_FAKE_TIME` set for
 *     every tool, `LC_ALL=C` (entries are added in sorted order), a fresh output file, and
 *     `MKE2FS_CONFIG` pointing nowhere so the host's /etc/mke2fs.conf does not change defaults;
 *   - mkfs -d copies atime and ctime: every used inode gets both set to the fixed time with
 *     debugfs `sif` (crtime already is mkfs's fake time);
 *   - in-inode xattrs keep the source's listxattr order: entries with two or more xattrs get
 *     them removed and set again in sorted order;
 *   - the root directory's mode and mtime are not copied: set with `sif`; its owner comes from
 *     `-E root_owner=`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Tree, TreeEntry } from "./tree.ts";

const MiB = 1024 * 1024;

/** Free space every image keeps for the actor's writes (sparse: costs nothing until written). */
export const HEADROOM_BYTES = 512 * MiB;
export const BLOCK_SIZE = 4096;
export const INODE_SIZE = 256;
/** The ext4 features, spelled out so the host's mke2fs.conf cannot change them. */
export const FEATURES =
  "^has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize";

/** Image size and inode count. */
export interface Geometry {
  sizeBytes: number;
  inodes: number;
}

/**
 * Size and inode count as a function of the tree's contents only: one inode per entry plus a
 * quarter and a fixed reserve; content in whole blocks, directory blocks, the eagerly written
 * inode table, ~6 % for bitmaps/extent/group metadata, a fixed 16 MiB and the headroom.
 */
export function geometryOf(
  tree: Pick<Tree, "entries" | "contentBlocksBytes" | "nameBytes">,
): Geometry {
  const entries = tree.entries.length;
  const inodes = entries + Math.ceil(entries / 4) + 8192;
  const dirBytes = Math.ceil((tree.nameBytes + entries * 16) / BLOCK_SIZE) * BLOCK_SIZE +
    tree.entries.filter((e) => e.kind === "dir").length * BLOCK_SIZE;
  const xattrBytes = tree.entries.filter((e) => e.xattrs.length > 0).length * BLOCK_SIZE;
  const symlinkBytes = tree.entries.filter((e) => (e.target?.length ?? 0) >= 60).length *
    BLOCK_SIZE;
  const data = tree.contentBlocksBytes + dirBytes + xattrBytes + symlinkBytes;
  const sizeBytes = data + inodes * INODE_SIZE + Math.ceil(data / 16) + 16 * MiB + HEADROOM_BYTES;
  return { sizeBytes: Math.ceil(sizeBytes / MiB) * MiB, inodes };
}

function uuidFrom(bytes: Uint8Array): string {
  const b = bytes.slice(0, 16);
  b[6] = (b[6] & 0x0f) | 0x40; // RFC 4122 layout so every tool accepts it
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The filesystem UUID and directory hash seed for an image key (hex). */
export function idsOf(imageKey: string): { uuid: string; hashSeed: string } {
  const derive = (label: string) => createHash("sha256").update(`${label}:${imageKey}`).digest();
  return { uuid: uuidFrom(derive("uuid")), hashSeed: uuidFrom(derive("hash_seed")) };
}

/** Environment for every e2fsprogs tool of one build. */
export function toolEnv(fakeTime: number): Record<string, string> {
  return {
    LC_ALL: "C",
    E2FSPROGS_FAKE_TIME: String(fakeTime),
    MKE2FS_CONFIG: "/nonexistent/ateom-mke2fs.conf",
  };
}

/** mkfs.ext4 argv (without the program) that writes `src`'s tree into the file `image`. */
export function mkfsArgs(p: {
  src: string;
  image: string;
  geometry: Geometry;
  uuid: string;
  hashSeed: string;
  rootUid: number;
  rootGid: number;
}): string[] {
  return [
    "-F",
    "-q",
    "-t",
    "ext4",
    "-b",
    String(BLOCK_SIZE),
    "-I",
    String(INODE_SIZE),
    "-N",
    String(p.geometry.inodes),
    "-m",
    "0",
    "-U",
    p.uuid,
    "-E",
    [
      `hash_seed=${p.hashSeed}`,
      "lazy_itable_init=0",
      "lazy_journal_init=0",
      `root_owner=${p.rootUid}:${p.rootGid}`,
    ].join(","),
    "-O",
    FEATURES,
    "-d",
    p.src,
    p.image,
    `${p.geometry.sizeBytes / 1024}k`,
  ];
}

/** A path or name as one debugfs argument (double quotes; a quote is written twice). */
export function quoteArg(s: string): string {
  if (/[\n\r\0]/.test(s)) {
    throw new Error(`cannot pass ${JSON.stringify(s)} to debugfs: it contains a line break or NUL`);
  }
  return `"${s.replaceAll('"', '""')}"`;
}

function imagePath(e: TreeEntry): string {
  return `/${e.path}`;
}

/** A file the fixup script reads (`ea_set -f`, `write`), with the bytes to put there. */
export interface ScriptFile {
  name: string;
  bytes: Uint8Array;
}

/** Guest DNS: the bytes to write as /etc/resolv.conf in the image. */
export interface ResolvConf {
  bytes: Uint8Array;
}

/**
 * The fixup debugfs lines: root mode and mtime, xattrs in sorted order, and /etc/resolv.conf.
 * `dir` is where the returned files are written; the script names them by absolute path.
 */
export function fixupScript(p: {
  tree: Tree;
  fakeTime: number;
  dir: string;
  resolvConf?: ResolvConf;
}): { script: string; files: ScriptFile[] } {
  const lines: string[] = [];
  const files: ScriptFile[] = [];
  const root = p.tree.entries[0];
  lines.push(`sif <2> mode 0${(0o40000 | root.perm).toString(8)}`);
  lines.push(`sif <2> mtime @${root.mtime}`);
  for (const e of p.tree.entries) {
    if (e.linkOf !== undefined) continue;
    const isRoot = e.path === "";
    if (e.xattrs.length < 2 && !(isRoot && e.xattrs.length > 0)) continue;
    const target = isRoot ? "<2>" : quoteArg(imagePath(e));
    lines.push(`ea_rm ${target} ${e.xattrs.map(([n]) => quoteArg(n)).join(" ")}`);
    for (const [name, value] of e.xattrs) {
      const file = { name: `${p.dir}/xattr-${files.length}`, bytes: value };
      files.push(file);
      lines.push(`ea_set -f ${quoteArg(file.name)} ${target} ${quoteArg(name)}`);
    }
  }
  if (p.resolvConf) {
    const etc = p.tree.entries.find((e) => e.path === "etc");
    const existing = p.tree.entries.find((e) => e.path === "etc/resolv.conf");
    if (etc && etc.kind !== "dir") {
      throw new Error(`cannot write /etc/resolv.conf: /etc in the bundle is a ${etc.kind}`);
    }
    if (existing?.kind === "dir") {
      throw new Error("cannot write /etc/resolv.conf: it is a directory in the bundle");
    }
    if (!etc) {
      lines.push("mkdir /etc", "sif /etc mode 040755", "sif /etc uid 0", "sif /etc gid 0");
      for (const f of ["mtime", "atime", "ctime"]) lines.push(`sif /etc ${f} @${p.fakeTime}`);
    }
    if (existing) lines.push("rm /etc/resolv.conf");
    const file = { name: `${p.dir}/resolv.conf`, bytes: p.resolvConf.bytes };
    files.push(file);
    lines.push(`write ${quoteArg(file.name)} /etc/resolv.conf`);
    lines.push(
      "sif /etc/resolv.conf mode 0100644",
      "sif /etc/resolv.conf uid 0",
      "sif /etc/resolv.conf gid 0",
    );
    for (const f of ["mtime", "atime", "ctime"]) {
      lines.push(`sif /etc/resolv.conf ${f} @${p.fakeTime}`);
    }
  }
  return { script: lines.join("\n") + "\n", files };
}

/**
 * The debugfs lines that set atime and ctime of every used inode to `time` (mkfs copied them
 * from the source; crtime is already mkfs's fake time). Runs before {@link fixupScript}, whose
 * own inodes get their times there.
 */
export function timesScript(inodes: readonly number[], time: number): string {
  const lines: string[] = [];
  for (const ino of inodes) {
    if (ino !== 2 && ino < 11) continue; // reserved inodes are written by mkfs with fake time
    lines.push(`sif <${ino}> atime @${time}`, `sif <${ino}> ctime @${time}`);
  }
  return lines.join("\n") + "\n";
}

/** The used inode numbers, from `dumpe2fs` output (group list with "Free inodes:" lines). */
export function parseUsedInodes(dumpe2fs: string): number[] {
  const perGroup = Number(/^Inodes per group:\s+(\d+)/m.exec(dumpe2fs)?.[1]);
  if (!perGroup) throw new Error("dumpe2fs output has no 'Inodes per group'");
  const used: number[] = [];
  let group = -1;
  for (const line of dumpe2fs.split("\n")) {
    const g = /^Group (\d+):/.exec(line);
    if (g) {
      group = Number(g[1]);
      continue;
    }
    const free = /^\s+Free inodes:\s*(.*)$/.exec(line);
    if (!free || group < 0) continue;
    const first = group * perGroup + 1;
    const last = (group + 1) * perGroup;
    const isFree = new Uint8Array(perGroup);
    for (const part of free[1].split(",").map((s) => s.trim()).filter(Boolean)) {
      const [a, b] = part.split("-").map(Number);
      for (let i = a; i <= (b ?? a); i++) isFree[i - first] = 1;
    }
    for (let i = first; i <= last; i++) if (!isFree[i - first]) used.push(i);
    group = -1;
  }
  return used;
}

/** The lines of debugfs stderr that report a failed command (the version banner is not one). */
export function debugfsErrors(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.trim() !== "" && !/^debugfs \d/.test(l));
}
