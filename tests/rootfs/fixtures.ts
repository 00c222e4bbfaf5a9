/**
 * Test fixtures for the rootfs image builder: a varied bundle tree that can be created in
 * different orders with different atimes, and helpers that read an image back with debugfs.
 *
 * @module
 */
import { setXattr } from "../../lib/ffi/xattr.ts";

const enc = new TextEncoder();

/** One entry of the varied tree. */
export type Spec =
  | { path: string; kind: "dir"; perm: number; uid?: number; gid?: number; mtime: number }
  | {
    path: string;
    kind: "file";
    perm: number;
    uid?: number;
    gid?: number;
    mtime: number;
    bytes: Uint8Array;
    xattrs?: [string, string][];
  }
  | { path: string; kind: "link"; of: string }
  | { path: string; kind: "symlink"; target: string; mtime: number }
  | { path: string; kind: "chardev" | "blockdev"; major: number; minor: number; mtime: number }
  | { path: string; kind: "fifo"; mtime: number };

function pseudoRandom(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The root directory's mode, owner, mtime and xattrs in the varied tree. */
export const ROOT = {
  perm: 0o750,
  uid: 1000,
  gid: 1001,
  mtime: 1_600_000_100,
  xattrs: [["user.root-b", "2"], ["user.root-a", "1"]] as [string, string][],
};

/** A tree with every kind of entry mkfs copies: modes, owners, links, devices, xattrs. */
export function variedTree(): Spec[] {
  return [
    { path: "bin", kind: "dir", perm: 0o755, mtime: 1_600_000_001 },
    { path: "etc", kind: "dir", perm: 0o755, mtime: 1_600_000_002 },
    { path: "dev", kind: "dir", perm: 0o755, mtime: 1_600_000_003 },
    { path: "tmp", kind: "dir", perm: 0o1777, mtime: 1_600_000_004 },
    { path: "home", kind: "dir", perm: 0o755, mtime: 1_600_000_005 },
    { path: "home/user", kind: "dir", perm: 0o700, uid: 1000, gid: 1000, mtime: 1_600_000_006 },
    { path: 'a b"c', kind: "dir", perm: 0o755, mtime: 1_600_000_007 },
    {
      path: "bin/tool",
      kind: "file",
      perm: 0o4755,
      mtime: 1_600_000_010,
      bytes: pseudoRandom(70_000, 1),
      xattrs: [["user.zeta", "z"], ["user.alpha", "a"], ["trusted.mid", "m"]],
    },
    { path: "bin/tool-hardlink", kind: "link", of: "bin/tool" },
    {
      path: "etc/hosts",
      kind: "file",
      perm: 0o644,
      mtime: 1_600_000_011,
      bytes: enc.encode("127.0.0.1 localhost\n"),
    },
    {
      path: "home/user/data",
      kind: "file",
      perm: 0o600,
      uid: 1000,
      gid: 1000,
      mtime: 1_600_000_012,
      bytes: pseudoRandom(300_000, 2),
      xattrs: [["user.one", "1"]],
    },
    { path: "empty", kind: "file", perm: 0o444, mtime: 1_600_000_013, bytes: new Uint8Array() },
    {
      path: 'a b"c/name with spaces',
      kind: "file",
      perm: 0o640,
      gid: 5,
      mtime: 1_600_000_014,
      bytes: enc.encode("spaces\n"),
    },
    { path: "hosts-link", kind: "symlink", target: "etc/hosts", mtime: 1_600_000_015 },
    { path: "long-link", kind: "symlink", target: "x/".repeat(60) + "end", mtime: 1_600_000_016 },
    { path: "dev/null", kind: "chardev", major: 1, minor: 3, mtime: 1_600_000_017 },
    { path: "dev/loop9", kind: "blockdev", major: 7, minor: 9, mtime: 1_600_000_018 },
    { path: "tmp/fifo", kind: "fifo", mtime: 1_600_000_019 },
  ];
}

async function run(program: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(program, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * Creates `specs` under `root` (which must exist). `reverse` creates files and links in reverse
 * order and sets xattrs in reverse order; `atime` is given to every entry. Times are set last,
 * deepest first, so adding children does not change them.
 */
export async function createTree(
  root: string,
  specs: Spec[],
  opts: { reverse?: boolean; atime?: number } = {},
): Promise<void> {
  const atime = opts.atime ?? 1_500_000_000;
  const dirs = specs.filter((s) => s.kind === "dir");
  const rest = specs.filter((s) => s.kind !== "dir");
  if (opts.reverse) rest.reverse();
  for (const d of dirs) await Deno.mkdir(`${root}/${d.path}`);
  // Hard links need their target first, whatever the order.
  const ordered = [
    ...rest.filter((s) => s.kind !== "link"),
    ...rest.filter((s) => s.kind === "link"),
  ];
  for (const s of ordered) {
    const p = `${root}/${s.path}`;
    switch (s.kind) {
      case "file": {
        await Deno.writeFile(p, s.bytes);
        const xattrs = opts.reverse ? [...(s.xattrs ?? [])].reverse() : s.xattrs ?? [];
        for (const [name, value] of xattrs) setXattr(p, name, enc.encode(value));
        break;
      }
      case "link":
        await Deno.link(`${root}/${s.of}`, p);
        break;
      case "symlink":
        await Deno.symlink(s.target, p);
        break;
      case "chardev":
      case "blockdev":
        await run("mknod", [p, s.kind === "chardev" ? "c" : "b", String(s.major), String(s.minor)]);
        break;
      case "fifo":
        await run("mknod", [p, "p"]);
        break;
    }
  }
  for (const s of specs) {
    if (s.kind === "dir" || s.kind === "file") {
      // chown clears setuid/setgid, so it comes first.
      await Deno.chown(`${root}/${s.path}`, s.uid ?? 0, s.gid ?? 0);
      await Deno.chmod(`${root}/${s.path}`, s.perm);
    }
  }
  await Deno.chown(root, ROOT.uid, ROOT.gid);
  await Deno.chmod(root, ROOT.perm);
  const rootXattrs = opts.reverse ? [...ROOT.xattrs].reverse() : ROOT.xattrs;
  for (const [name, value] of rootXattrs) setXattr(root, name, enc.encode(value));
  const timed = [...specs].filter((s) => s.kind !== "link").reverse();
  for (const s of timed) {
    const p = `${root}/${s.path}`;
    const mtime = (s as { mtime: number }).mtime;
    if (s.kind === "symlink") await run("touch", ["-h", "-d", `@${mtime}`, p]);
    else await Deno.utime(p, atime, mtime);
  }
  await Deno.utime(root, atime, ROOT.mtime);
}

/** Output of one debugfs request against `image` (read-only). */
export async function debugfs(image: string, request: string): Promise<string> {
  const out = await new Deno.Command("debugfs", {
    args: ["-R", request, image],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

/** The bytes debugfs `cat` prints for `path` in `image`. */
export async function debugfsCat(image: string, path: string): Promise<Uint8Array> {
  const out = await new Deno.Command("debugfs", {
    args: ["-R", `cat "${path.replaceAll('"', '""')}"`, image],
    stdout: "piped",
    stderr: "null",
  }).output();
  return out.stdout;
}

/** Fields of a debugfs `stat` of `path`. */
export interface InodeStat {
  inode: number;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  links: number;
  size: number;
  mtime: number;
  atime: number;
  ctime: number;
  device?: string;
  fastLink?: string;
}

export async function debugfsStat(image: string, path: string): Promise<InodeStat> {
  const text = await debugfs(image, `stat "${path.replaceAll('"', '""')}"`);
  const num = (re: RegExp, radix = 10) => {
    const m = re.exec(text);
    if (!m) throw new Error(`debugfs stat ${path}: no ${re} in:\n${text}`);
    return parseInt(m[1], radix);
  };
  return {
    inode: num(/^Inode: (\d+)/m),
    type: /Type: (\S+)/.exec(text)?.[1] ?? "",
    mode: num(/Mode:\s+(\d+)/, 8),
    uid: num(/User:\s+(\d+)/),
    gid: num(/Group:\s+(\d+)/),
    links: num(/Links: (\d+)/),
    size: num(/Size: (\d+)/),
    mtime: num(/^\s*mtime: 0x([0-9a-f]+)/m, 16),
    atime: num(/^\s*atime: 0x([0-9a-f]+)/m, 16),
    ctime: num(/^\s*ctime: 0x([0-9a-f]+)/m, 16),
    device: /Device major\/minor number: (\S+)/.exec(text)?.[1],
    fastLink: /Fast link dest: "(.*)"/.exec(text)?.[1],
  };
}

/** The names and printed values of `path`'s xattrs, in on-disk order. */
export async function debugfsXattrs(image: string, path: string): Promise<string[]> {
  const text = await debugfs(image, `ea_list "${path.replaceAll('"', '""')}"`);
  return text.split("\n").map((l) => l.trim()).filter((l) => /^\S+ \(\d+\) = /.test(l));
}

/** Runs `e2fsck -fn` on `image`; returns its exit code and output. */
export async function fsck(image: string): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("e2fsck", {
    args: ["-fn", image],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

/** sha256 (hex) of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(4 * 1024 * 1024);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

/**
 * sha256 (hex) over a sparse file's size, data extents and their bytes: equal for two files
 * exactly when their bytes are equal and their data extents coincide; much cheaper than
 * {@link sha256File} on a mostly-hole image.
 */
export async function sha256OfData(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const { extents } = await import("../../lib/sparse/extents.ts");
  const hash = createHash("sha256");
  hash.update(`${(await Deno.stat(path)).size}\n`);
  using f = await Deno.open(path, { read: true });
  for await (const [start, end] of extents(path)) {
    hash.update(`${start}-${end}\n`);
    const buf = new Uint8Array(end - start);
    await f.seek(start, Deno.SeekMode.Start);
    let got = 0;
    while (got < buf.length) got += (await f.read(buf.subarray(got))) ?? buf.length;
    hash.update(buf);
  }
  return hash.digest("hex");
}
