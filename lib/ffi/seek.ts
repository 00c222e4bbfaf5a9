/**
 * SEEK_DATA / SEEK_HOLE (lseek(2)) on raw fds: the primitive behind sparse-file extent iteration.
 *
 * @module
 */
import { check, Errno, lastErrno, sym, SyscallError } from "./libc.ts";

export const SEEK_SET = 0;
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

/**
 * lseek(fd, offset, whence). Returns -1 for ENXIO (no data/hole at or after `offset`, the normal
 * end of a SEEK_DATA walk); throws a SyscallError for anything else.
 */
export function seek(fd: number, offset: number, whence: number): number {
  const r = sym().lseek(fd, BigInt(offset), whence);
  if (r < 0n) {
    const errno = lastErrno();
    if (errno === Errno.ENXIO) return -1;
    throw new SyscallError("lseek", errno, `fd ${fd} offset ${offset} whence ${whence}`);
  }
  return Number(r);
}

/** The file size through lseek(SEEK_END). */
export function sizeOf(fd: number): number {
  return Number(check("lseek", sym().lseek(fd, 0n, SEEK_END)));
}
