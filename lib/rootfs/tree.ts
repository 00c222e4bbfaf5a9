/**
 * The bundle rootfs tree as the image builder sees it: one metadata walk in canonical (byte-wise
 * sorted) order, and a content hash over everything that ends up in the ext4 image.
 *
 * Contract: {@link scanTree} lstat()s every entry (never following symlinks) and reads xattrs,
 * but no file bytes; {@link hashTree} then reads every regular file once. The hash covers, per
 * entry in sorted order: path, type, permission bits, owner, mtime (whole seconds, as mkfs keeps
 * them), size and bytes, symlink target, device number, hard-link target (the first path in
 * sorted order sharing the inode) and xattrs sorted by name. It does not cover atime, ctime,
 * inode numbers or creation order, which the image builder normalises away.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { createHash, type Hash } from "node:crypto";
import { getXattr, isXattrUnsupported, listXattrs } from "../ffi/xattr.ts";

/** The kind of a tree entry, named as mkfs/debugfs do. */
export type EntryKind = "dir" | "file" | "symlink" | "chardev" | "blockdev" | "fifo" | "socket";

/** One entry of the tree, with what mkfs.ext4 -d copies of it. */
export interface TreeEntry {
  /** Path relative to the root, `/`-separated; `""` is the root itself. */
  path: string;
  kind: EntryKind;
  /** Permission bits including setuid/setgid/sticky (st_mode & 0o7777). */
  perm: number;
  uid: number;
  gid: number;
  /** mtime in whole seconds since the epoch. */
  mtime: number;
  /** Bytes of a regular file; 0 otherwise. */
  size: number;
  /** Symlink target. */
  target?: string;
  /** Device number of a character or block device. */
  rdev?: number;
  /** For the second and later paths of a hard-linked file: the first path (sorted order). */
  linkOf?: string;
  /** xattrs sorted by name. */
  xattrs: [name: string, value: Uint8Array][];
}

/** A scanned tree and the totals the image geometry depends on. */
export interface Tree {
  root: string;
  entries: TreeEntry[];
  /** Sum of regular-file sizes (hard links counted once). */
  contentBytes: number;
  /** Sum of regular-file sizes rounded up to 4 KiB blocks (hard links counted once). */
  contentBlocksBytes: number;
  /** Sum of name lengths: sizes the directory blocks. */
  nameBytes: number;
  /** The newest mtime in the tree (seconds), at least 1. */
  maxMtime: number;
}

const encoder = new TextEncoder();

const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * Byte-wise (C locale) order of UTF-8 names, the order mkfs.ext4 adds entries in. UTF-8 byte
 * order is code point order, which UTF-16 comparison matches unless a surrogate pair is involved.
 */
export function compareNames(a: string, b: string): number {
  if (!SURROGATE.test(a) && !SURROGATE.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/**
 * Lets the event loop run during long synchronous walks (sync calls are ~10× faster here);
 * setImmediate, because nested setTimeout(0) is clamped to 4 ms.
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function kindOf(info: Deno.FileInfo): EntryKind {
  if (info.isDirectory) return "dir";
  if (info.isFile) return "file";
  if (info.isSymlink) return "symlink";
  if (info.isCharDevice) return "chardev";
  if (info.isBlockDevice) return "blockdev";
  if (info.isFifo) return "fifo";
  if (info.isSocket) return "socket";
  throw new Error("unknown file type");
}

function readXattrs(path: string): [string, Uint8Array][] {
  let names: string[];
  try {
    names = listXattrs(path);
  } catch (e) {
    if (isXattrUnsupported(e)) return [];
    throw e;
  }
  return names.sort(compareNames).map((name) => [name, getXattr(path, name)]);
}

/** The reason in a Deno error message, without its "(os error N): op 'path'" tail. */
export function reasonOf(e: unknown): string {
  const message = (e as Error)?.message ?? String(e);
  return message.replace(/ \(os error \d+\).*$/, "").replace(/^[a-z_]+ [^:]*: /, "");
}

const READ_HINT = "every entry of the bundle must be readable by the worker";

function join(rel: string, name: string): string {
  return rel === "" ? name : `${rel}/${name}`;
}

/**
 * Walks `root` (which must be a directory) and returns every entry in depth-first, byte-wise
 * sorted order, the root first. Throws a one-line error naming the entry that cannot be read.
 */
export async function scanTree(root: string): Promise<Tree> {
  const entries: TreeEntry[] = [];
  const firstPathOfInode = new Map<string, string>();
  let contentBytes = 0;
  let contentBlocksBytes = 0;
  let nameBytes = 0;
  let maxMtime = 1;

  let sinceYield = 0;
  const visit = async (rel: string, name: string) => {
    if (++sinceYield >= 512) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
    const abs = rel === "" ? root : `${root}/${rel}`;
    let info: Deno.FileInfo;
    let xattrs: [string, Uint8Array][];
    try {
      info = Deno.lstatSync(abs);
      xattrs = readXattrs(abs);
    } catch (e) {
      throw new Error(`cannot read ${abs}: ${reasonOf(e)}; ${READ_HINT}`);
    }
    nameBytes += encoder.encode(name).length;
    const mtime = Math.floor((info.mtime?.getTime() ?? 0) / 1000);
    if (mtime > maxMtime) maxMtime = mtime;
    const entry: TreeEntry = {
      path: rel,
      kind: kindOf(info),
      perm: (info.mode ?? 0) & 0o7777,
      uid: info.uid ?? 0,
      gid: info.gid ?? 0,
      mtime,
      size: info.isFile ? info.size : 0,
      xattrs,
    };
    if (info.isFile && (info.nlink ?? 1) > 1) {
      const inode = `${info.dev}:${info.ino}`;
      const first = firstPathOfInode.get(inode);
      if (first !== undefined) entry.linkOf = first;
      else firstPathOfInode.set(inode, rel);
    }
    if (info.isFile && entry.linkOf === undefined) {
      contentBytes += info.size;
      contentBlocksBytes += Math.ceil(info.size / 4096) * 4096;
    }
    if (info.isSymlink) entry.target = Deno.readLinkSync(abs);
    if (info.isCharDevice || info.isBlockDevice) entry.rdev = info.rdev ?? 0;
    entries.push(entry);
    if (info.isDirectory) {
      const names: string[] = [];
      try {
        for (const child of Deno.readDirSync(abs)) names.push(child.name);
      } catch (e) {
        throw new Error(`cannot read directory ${abs}: ${reasonOf(e)}; ${READ_HINT}`);
      }
      names.sort(compareNames);
      for (const child of names) await visit(join(rel, child), child);
    }
  };

  let rootInfo: Deno.FileInfo;
  try {
    rootInfo = await Deno.stat(root);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `source directory ${root} does not exist; pass the bundle's rootfs directory`,
      );
    }
    throw new Error(`cannot read source directory ${root}: ${reasonOf(e)}; ${READ_HINT}`);
  }
  if (!rootInfo.isDirectory) {
    throw new Error(`source ${root} is not a directory; pass the bundle's rootfs directory`);
  }
  await visit("", "");
  return { root, entries, contentBytes, contentBlocksBytes, nameBytes, maxMtime };
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The canonical metadata record of one entry: one JSON line (no file bytes). */
export function entryRecord(e: TreeEntry): string {
  const detail = e.linkOf !== undefined
    ? ["link", e.linkOf]
    : e.kind === "symlink"
    ? ["target", e.target ?? ""]
    : e.kind === "chardev" || e.kind === "blockdev"
    ? ["rdev", e.rdev ?? 0]
    : e.kind === "file"
    ? ["size", e.size]
    : [];
  const xattrs = e.xattrs.map(([name, value]) => [name, hex(value)]);
  return JSON.stringify([e.path, e.kind, e.perm, e.uid, e.gid, e.mtime, ...detail, xattrs]) +
    "\n";
}

const CHUNK = 4 * 1024 * 1024;
const YIELD_EVERY_BYTES = 4 * 1024 * 1024;

function hashFile(hash: Hash, abs: string, size: number, buf: Uint8Array): number {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(abs, { read: true });
  } catch (e) {
    throw new Error(`cannot read ${abs}: ${reasonOf(e)}; ${READ_HINT}`);
  }
  using _ = file;
  let total = 0;
  for (;;) {
    const n = file.readSync(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
    total += n;
    if (total > size) break;
  }
  if (total !== size) {
    throw new Error(`${abs} changed while it was read (${size} → ${total} bytes)`);
  }
  return total;
}

/**
 * The content hash (sha256 hex) of a scanned tree: the metadata records of every entry in
 * order, each regular file's bytes right after its record. `onBytes` reports file bytes read.
 */
export async function hashTree(
  tree: Tree,
  onBytes: (n: number) => void = () => {},
): Promise<string> {
  const hash = createHash("sha256");
  const buf = new Uint8Array(CHUNK);
  hash.update("ateom-rootfs-tree-v1\n");
  let sinceYield = 0;
  for (const entry of tree.entries) {
    hash.update(entryRecord(entry));
    if (entry.kind === "file" && entry.linkOf === undefined && entry.size > 0) {
      const n = hashFile(hash, `${tree.root}/${entry.path}`, entry.size, buf);
      onBytes(n);
      sinceYield += n;
    }
    if ((sinceYield += 256) >= YIELD_EVERY_BYTES) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
  }
  return hash.digest("hex");
}

/**
 * sha256 (hex) of the metadata records alone: names, types, modes, owners, mtimes, sizes, link
 * targets, devices, hard links and xattrs, without reading file bytes. It fixes everything of
 * the image's layout that does not depend on file bytes, so the build can start before
 * {@link hashTree} has read them.
 */
export function metadataHash(tree: Tree): string {
  const hash = createHash("sha256");
  hash.update("ateom-rootfs-metadata-v1\n");
  for (const entry of tree.entries) hash.update(entryRecord(entry));
  return hash.digest("hex");
}
