/**
 * Positioned I/O on raw fds (pread/pwrite/copy_file_range/ftruncate through Deno FFI): the sparse
 * copy and merge move data between files inside the kernel where it can, otherwise straight
 * between a Uint8Array and the page cache, with one call per chunk and without the seek + async
 * op pair Deno.FsFile needs per read or write.
 *
 * Contract: synchronous (errno read on the calling thread) except {@link pwriteOffThread}; short
 * reads/writes are looped over; failures throw a SyscallError naming the fd and offset.
 *
 * @module
 */
import { addressOf, Errno, lastErrno, sym, SyscallError } from "./libc.ts";

/** Reads exactly `buf.length` bytes at `offset`; throws on EOF before that. */
export function preadFull(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number): void {
  transferAt("pread", fd, buf, offset);
}

/** preadv2 flag: fail with EAGAIN instead of waiting for the disk. */
const RWF_NOWAIT = 0x8;

/**
 * Reads into `buf` at `offset` only what the page cache already holds (preadv2 RWF_NOWAIT): returns
 * the bytes read, 0 when the first page is not cached (or the kernel or filesystem cannot tell
 * without waiting). Never waits for the disk; throws on other failures. `buf` must be backed by
 * its own ArrayBuffer of at least 64 KiB (V8 may move smaller ones; the kernel gets its address).
 */
export function preadCached(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number): number {
  const iov = new BigUint64Array([addressOf(buf), BigInt(buf.length)]);
  for (;;) {
    const n = Number(
      sym().preadv2(fd, new Uint8Array(iov.buffer), 1, BigInt(offset), RWF_NOWAIT),
    );
    if (n >= 0) return n;
    const errno = lastErrno();
    if (errno === Errno.EINTR) continue;
    if (errno === Errno.EAGAIN || errno === Errno.ENOTSUP) return 0;
    throw new SyscallError("preadv2", errno, `fd ${fd} offset ${offset}`);
  }
}

/** Writes all of `buf` at `offset`. */
export function pwriteFull(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number): void {
  transferAt("pwrite", fd, buf, offset);
}

/** Loops `call` over short transfers and EINTR until all of `buf` has moved. */
function transferAt(
  call: "pread" | "pwrite",
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  offset: number,
): void {
  const fn = sym()[call];
  let done = 0;
  while (done < buf.length) {
    // The first try passes buf itself: a subarray per call costs more than the call into libc.
    const part = done === 0 ? buf : buf.subarray(done);
    const n = Number(fn(fd, part, BigInt(buf.length - done), BigInt(offset + done)));
    if (n < 0) {
      const errno = lastErrno();
      if (errno === Errno.EINTR) continue;
      throw new SyscallError(call, errno, `fd ${fd} offset ${offset + done}`);
    }
    if (n === 0 && call === "pread") {
      throw new Error(`pread fd ${fd}: unexpected end of file at ${offset + done}`);
    }
    done += n;
  }
}

/**
 * Writes all of `buf` at `offset` on Deno's FFI thread pool, so the calling thread keeps running;
 * `buf` must stay untouched until the promise settles. A short or failed write is finished by
 * {@link pwriteFull}, which reads errno on this thread.
 */
export async function pwriteOffThread(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  offset: number,
): Promise<void> {
  const n = Number(
    await sym().pwriteOffThread(fd, buf, BigInt(buf.length), BigInt(offset)),
  );
  if (n === buf.length) return;
  const done = Math.max(n, 0);
  pwriteFull(fd, buf.subarray(done), offset + done);
}

/** errnos with which copy_file_range(2) refuses a pair of files it cannot copy between. */
const COPY_RANGE_UNSUPPORTED: ReadonlySet<number> = new Set([
  Errno.EXDEV, // different filesystems (before Linux 5.3, and between types since 5.19)
  Errno.EINVAL, // a filesystem or file type without support
  Errno.ENOSYS, // a kernel or seccomp policy without the call
  Errno.ENOTSUP, // EOPNOTSUPP: the filesystem declines
]);

/**
 * copy_file_range(2): copies up to `length` bytes from `src` at `srcOffset` to `dst` at
 * `dstOffset` inside the kernel (page cache to page cache; a reflink or a server-side copy where
 * the filesystem offers one), without the bytes passing through this process. Returns the bytes
 * copied (0 at the end of `src`), or -1 when the kernel cannot copy between these two files, so
 * the caller copies through user space instead. Other failures throw.
 */
export function copyFileRange(
  src: number,
  srcOffset: number,
  dst: number,
  dstOffset: number,
  length: number,
): number {
  // The kernel reads and advances both offsets (loff_t *).
  const srcOff = new Uint8Array(new BigInt64Array([BigInt(srcOffset)]).buffer);
  const dstOff = new Uint8Array(new BigInt64Array([BigInt(dstOffset)]).buffer);
  for (;;) {
    const n = Number(sym().copy_file_range(src, srcOff, dst, dstOff, BigInt(length), 0));
    if (n >= 0) return n;
    const errno = lastErrno();
    if (errno === Errno.EINTR) continue;
    if (COPY_RANGE_UNSUPPORTED.has(errno)) return -1;
    throw new SyscallError("copy_file_range", errno, `fd ${src} → fd ${dst} offset ${srcOffset}`);
  }
}

/** posix_fadvise advice: the range will be read soon. */
export const POSIX_FADV_WILLNEED = 3;

/**
 * Asks the kernel to start reading `[offset, offset + length)` of `fd` into the page cache now,
 * without waiting for it (posix_fadvise WILLNEED): later reads of the range find it cached or in
 * flight. Only a hint: the kernel may ignore it; throws only on a bad fd or range.
 */
export function adviseWillNeed(fd: number, offset: number, length: number): void {
  const err = sym().posix_fadvise(fd, BigInt(offset), BigInt(length), POSIX_FADV_WILLNEED);
  if (err !== 0) throw new SyscallError("posix_fadvise", err, `fd ${fd} offset ${offset}`);
}

/** Sets the size of the file open at `fd`. */
export function truncateFd(fd: number, size: number): void {
  if (sym().ftruncate(fd, BigInt(size)) < 0) {
    throw new SyscallError("ftruncate", lastErrno(), `fd ${fd} size ${size}`);
  }
}
