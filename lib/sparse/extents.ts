/**
 * Data extents of a sparse file, found with lseek SEEK_DATA/SEEK_HOLE.
 *
 * On a filesystem without hole support the kernel reports the whole file as data, so the walk
 * yields one extent; an all-hole file yields none.
 *
 * @module
 */
import { closeFd, O_RDONLY, openFd } from "../ffi/libc.ts";
import { seek, SEEK_DATA, SEEK_HOLE, sizeOf } from "../ffi/seek.ts";

/** A half-open byte range `[start, end)` holding data. */
export type Extent = readonly [start: number, end: number];

/** The data extents of the file open at raw fd `fd`, in ascending order, at the time of the call. */
export function extentsOfFd(fd: number): Extent[] {
  const size = sizeOf(fd);
  const out: Extent[] = [];
  let pos = 0;
  while (pos < size) {
    const start = seek(fd, pos, SEEK_DATA);
    if (start < 0 || start >= size) break;
    let end = seek(fd, start, SEEK_HOLE);
    if (end < 0 || end > size) end = size;
    out.push([start, end]);
    pos = end;
  }
  return out;
}

/** Yields the data extents of the file at `path` in ascending order. */
export async function* extents(path: string): AsyncGenerator<Extent> {
  const fd = openFd(path, O_RDONLY);
  try {
    for (const extent of extentsOfFd(fd)) yield extent;
  } finally {
    closeFd(fd);
  }
}

/** Total bytes in data extents of `path`. */
export async function dataBytes(path: string): Promise<number> {
  let total = 0;
  for await (const [start, end] of extents(path)) total += end - start;
  return total;
}
