/**
 * Sparse-aware copies: data regions are found with SEEK_DATA/SEEK_HOLE ({@link extentsOfFd}) and
 * copied inside the kernel with copy_file_range (no bounce through this process; a reflink on
 * filesystems that share blocks), or with large positioned reads and writes where the kernel
 * cannot copy between the two files (e.g. across filesystems); holes are skipped, never read and
 * never written, so a 2 GiB guest memory image with a 150 MiB working set costs 150 MiB of I/O.
 *
 * Contract: {@link sparseCopy} creates a new file with the source's size and data regions;
 * {@link copyRegions} overwrites an existing file's bytes at the source's data offsets and leaves
 * every other byte of the destination as it was. Neither fsyncs (callers own durability).
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { closeFd, O_RDONLY, O_WRONLY, openFd } from "../ffi/libc.ts";
import {
  adviseWillNeed,
  copyFileRange,
  preadCached,
  preadFull,
  pwriteFull,
  truncateFd,
} from "../ffi/pio.ts";
import { sizeOf } from "../ffi/seek.ts";
import { type Extent, extentsOfFd } from "./extents.ts";

/** Bytes moved per read/write call: large enough that syscall overhead vanishes. */
export const COPY_CHUNK = 4 * 1024 * 1024;
/** The event loop gets a turn after this many bytes (the copy itself is synchronous I/O). */
const YIELD_EVERY = 64 * 1024 * 1024;

const O_CREAT = 0o100;
const O_EXCL = 0o200;

/** Size and data extents of `path`, taken from one open of the file. */
export function layoutOf(path: string): { size: number; extents: Extent[] } {
  const fd = openFd(path, O_RDONLY);
  try {
    return { size: sizeOf(fd), extents: extentsOfFd(fd) };
  } finally {
    closeFd(fd);
  }
}

/** Runs `fn` with `path` open as a raw fd, closing it afterwards. */
export async function withFd<T>(
  path: string,
  flags: number,
  fn: (fd: number) => Promise<T>,
  mode = 0,
): Promise<T> {
  const fd = openFd(path, flags, mode);
  try {
    return await fn(fd);
  } finally {
    closeFd(fd);
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Options of {@link copyExtents}. */
export interface CopyOptions {
  /** Runs after each chunk is written (tests inject failures there). */
  onChunk?: (copied: number) => void | Promise<void>;
  /**
   * Unless `src` looks cached (its first, middle and last extents are in the page cache), keep
   * the disk reading {@link PREFETCH_WINDOW} ahead of the copy (posix_fadvise WILLNEED), so many
   * small scattered extents are read with the disk's whole queue depth instead of one synchronous
   * round trip each, and copy_file_range (which reads through a 64 KiB pipe) is not left waiting
   * on small synchronous reads. Default true.
   */
  prefetch?: boolean;
  /** Copy through user space (pread/pwrite) even where copy_file_range works. */
  userSpace?: boolean;
  /** Counts the bytes copied each way (the caller's object, added to). */
  stats?: CopyStats;
}

/** Bytes a copy moved inside the kernel and through user space. */
export interface CopyStats {
  inKernel: number;
  userSpace: number;
}

/** How far ahead of the copy an uncached source is read (bounded, so huge files do not flood memory). */
export const PREFETCH_WINDOW = 64 * 1024 * 1024;

/** Issues WILLNEED advice over the data of `extents`, in order, as far as the copy asks. */
class Prefetcher {
  #index = 0;
  #offset: number;
  #advised = 0;

  constructor(readonly fd: number, readonly extents: readonly Extent[]) {
    this.#offset = extents[0]?.[0] ?? 0;
  }

  /** Advises the next extents' data until `target` bytes of it (from the first) are advised. */
  until(target: number): void {
    while (this.#advised < target && this.#index < this.extents.length) {
      const end = this.extents[this.#index][1];
      const length = Math.min(end - this.#offset, target - this.#advised);
      adviseWillNeed(this.fd, this.#offset, length);
      this.#advised += length;
      this.#offset += length;
      if (this.#offset >= end) this.#offset = this.extents[++this.#index]?.[0] ?? 0;
    }
  }
}

/**
 * Copies `[offset, offset + length)` from `src` to `dst` with copy_file_range; returns the bytes
 * copied, fewer than `length` only when the kernel cannot copy between these files.
 */
function copyInKernel(src: number, dst: number, offset: number, length: number): number {
  let done = 0;
  while (done < length) {
    const n = copyFileRange(src, offset + done, dst, offset + done, length - done);
    if (n < 0) break;
    if (n === 0) {
      throw new Error(`copy_file_range fd ${src}: unexpected end of file at ${offset + done}`);
    }
    done += n;
  }
  return done;
}

/** True when the first, middle and last of `extents` are in the page cache (read into `buf`). */
function looksCached(
  src: number,
  extents: readonly Extent[],
  buf: Uint8Array<ArrayBuffer>,
): boolean {
  const probes = new Set([0, extents.length >> 1, extents.length - 1]);
  for (const i of probes) {
    if (i < 0) continue;
    const [start, end] = extents[i];
    const chunk = buf.subarray(0, Math.min(buf.length, end - start));
    if (preadCached(src, chunk, start) < chunk.length) return false;
  }
  return true;
}

/**
 * Copies the bytes of `extents` from raw fd `src` to the same offsets in raw fd `dst`; returns
 * the bytes copied.
 */
export async function copyExtents(
  src: number,
  dst: number,
  extents: readonly Extent[],
  options: CopyOptions = {},
): Promise<number> {
  const { onChunk, prefetch = true, stats } = options;
  let inKernel = !options.userSpace;
  let largest = 0;
  for (const [start, end] of extents) largest = Math.max(largest, end - start);
  // Allocated on first use: copies inside the kernel need none.
  let buffer: Uint8Array<ArrayBuffer> | undefined;
  const buf = () =>
    buffer ??= new Uint8Array(new ArrayBuffer(Math.min(COPY_CHUNK, Math.max(largest, 64 * 1024))));
  const prefetcher = prefetch && extents.length > 0 &&
      !looksCached(src, extents, new Uint8Array(new ArrayBuffer(64 * 1024)))
    ? new Prefetcher(src, extents)
    : undefined;
  let copied = 0;
  let sinceYield = 0;
  for (const [start, end] of extents) {
    for (let off = start; off < end; off += COPY_CHUNK) {
      const length = Math.min(COPY_CHUNK, end - off);
      prefetcher?.until(copied + length + PREFETCH_WINDOW);
      const kernelDone = inKernel ? copyInKernel(src, dst, off, length) : 0;
      if (kernelDone < length) {
        inKernel = false;
        const chunk = buf().subarray(0, length - kernelDone);
        preadFull(src, chunk, off + kernelDone);
        pwriteFull(dst, chunk, off + kernelDone);
      }
      if (stats) {
        stats.inKernel += kernelDone;
        stats.userSpace += length - kernelDone;
      }
      copied += length;
      sinceYield += length;
      if (onChunk) await onChunk(copied);
      if (sinceYield >= YIELD_EVERY) {
        sinceYield = 0;
        await yieldToEventLoop();
      }
    }
  }
  return copied;
}

/**
 * Overwrites `dst` with every data region of `src` at the same offsets; bytes of `dst` outside
 * those regions are untouched and its size only grows if a region ends past it. Returns the bytes
 * copied.
 */
export async function copyRegions(src: string, dst: string): Promise<number> {
  const { extents } = layoutOf(src);
  return await withFd(
    src,
    O_RDONLY,
    (srcFd) => withFd(dst, O_WRONLY, (dstFd) => copyExtents(srcFd, dstFd, extents)),
  );
}

/**
 * Copies `src` to a new file `dst` (which must not exist) preserving holes: only data regions
 * are written, then the size is set with ftruncate. On failure the partial `dst` is removed.
 * Returns the bytes copied.
 */
export async function sparseCopy(src: string, dst: string, mode = 0o600): Promise<number> {
  const { size, extents } = layoutOf(src);
  return await withFd(src, O_RDONLY, async (srcFd) => {
    let dstFd: number;
    try {
      dstFd = openFd(dst, O_WRONLY | O_CREAT | O_EXCL, mode);
    } catch (e) {
      throw new Error(`cannot create ${dst}: ${(e as Error).message}`);
    }
    try {
      const copied = await copyExtents(srcFd, dstFd, extents);
      truncateFd(dstFd, size);
      return copied;
    } catch (e) {
      await Deno.remove(dst).catch(() => {});
      throw e;
    } finally {
      closeFd(dstFd);
    }
  });
}

/**
 * Replaces `dst` atomically with a sparse copy of `src`: copies into `<dst>.tmp-<pid>` in the
 * same directory, then renames it over `dst`. A failure leaves `dst` as it was.
 */
export async function sparseCopyReplace(src: string, dst: string, mode = 0o600): Promise<void> {
  const tmp = `${dst}.tmp-${Deno.pid}`;
  await Deno.remove(tmp).catch(() => {});
  await sparseCopy(src, tmp, mode);
  try {
    await Deno.rename(tmp, dst);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
