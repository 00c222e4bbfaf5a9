/**
 * Extended attributes through Deno FFI (Deno has no xattr API): list, read and set the xattrs of
 * a path without following a final symlink (llistxattr/lgetxattr/lsetxattr).
 *
 * Contract: synchronous, so errno is read on the calling thread; failures throw a SyscallError.
 * Names are returned in the filesystem's order; callers that need a canonical order sort them.
 *
 * @module
 */
import { cString, Errno, lastErrno, sym, SyscallError } from "./libc.ts";

const decoder = new TextDecoder();

/**
 * Calls `fill(buf)` with growing buffers until the result fits (the value can change between the
 * size query and the read, which reports ERANGE).
 */
function readSized(
  call: string,
  path: string,
  fill: (buf: Uint8Array<ArrayBuffer> | null, n: number) => bigint | number,
): Uint8Array {
  for (let attempt = 0; attempt < 8; attempt++) {
    const want = Number(fill(null, 0));
    if (want < 0) throw new SyscallError(call, lastErrno(), path);
    const buf = new Uint8Array(Math.max(want, 1));
    const got = Number(fill(buf, buf.length));
    if (got >= 0) return buf.subarray(0, got);
    const errno = lastErrno();
    if (errno !== Errno.ERANGE) throw new SyscallError(call, errno, path);
  }
  throw new SyscallError(call, Errno.ERANGE, `${path}: value keeps changing size`);
}

const listBuf = new Uint8Array(64 * 1024);

/** The xattr names of `path` (the link itself for a symlink), in the filesystem's order. */
export function listXattrs(path: string): string[] {
  const p = cString(path);
  // One call in the common case (the list fits the shared buffer); the sized loop otherwise.
  const n = Number(sym().llistxattr(p, listBuf, BigInt(listBuf.length)));
  const raw = n >= 0
    ? listBuf.subarray(0, n)
    : lastErrno() === Errno.ERANGE
    ? readSized("llistxattr", path, (buf, len) => sym().llistxattr(p, buf, BigInt(len)))
    : (() => {
      throw new SyscallError("llistxattr", lastErrno(), path);
    })();
  if (raw.length === 0) return [];
  return decoder.decode(raw).split("\0").filter((name) => name.length > 0);
}

/** The value of xattr `name` of `path` (the link itself for a symlink). */
export function getXattr(path: string, name: string): Uint8Array {
  const p = cString(path);
  const n = cString(name);
  return readSized(
    "lgetxattr",
    `${path} ${name}`,
    (buf, len) => sym().lgetxattr(p, n, buf, BigInt(len)),
  );
}

/** Sets xattr `name` of `path` (the link itself for a symlink) to `value`. */
export function setXattr(path: string, name: string, value: Uint8Array): void {
  const v = new Uint8Array(value);
  const r = sym().lsetxattr(cString(path), cString(name), v, BigInt(v.length), 0);
  if (r < 0) throw new SyscallError("lsetxattr", lastErrno(), `${path} ${name}`);
}

/** Whether `err` says the filesystem does not support xattrs (or this namespace). */
export function isXattrUnsupported(err: unknown): boolean {
  return err instanceof SyscallError && err.errno === Errno.ENOTSUP;
}
