/**
 * Sparse-aware copies: data regions are found with SEEK_DATA/SEEK_HOLE ({@link extentsOfFd}) and
 * copied with large positioned reads and writes; holes are skipped, never read and never written,
 * so a 2 GiB guest memory image with a 150 MiB working set costs 150 MiB of I/O.
 *
 * Contract: {@link sparseCopy} creates a new file with the source's size and data regions;
 * {@link copyRegions} overwrites an existing file's bytes at the source's data offsets and leaves
 * every other byte of the destination as it was. Neither fsyncs (callers own durability).
 *
 * @module
 */
import { closeFd, O_RDONLY, openFd } from "../ffi/libc.ts";
import { sizeOf } from "../ffi/seek.ts";
import { type Extent, extentsOfFd } from "./extents.ts";

/** Bytes moved per read/write call: large enough that syscall overhead vanishes. */
export const COPY_CHUNK = 4 * 1024 * 1024;

/** Size and data extents of `path`, taken from one open of the file. */
export function layoutOf(path: string): { size: number; extents: Extent[] } {
  const fd = openFd(path, O_RDONLY);
  try {
    return { size: sizeOf(fd), extents: extentsOfFd(fd) };
  } finally {
    closeFd(fd);
  }
}

async function readFullAt(file: Deno.FsFile, buf: Uint8Array, offset: number): Promise<void> {
  await file.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < buf.length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) throw new Error(`unexpected end of file at offset ${offset + got}`);
    got += n;
  }
}

async function writeFullAt(file: Deno.FsFile, buf: Uint8Array, offset: number): Promise<void> {
  await file.seek(offset, Deno.SeekMode.Start);
  let put = 0;
  while (put < buf.length) put += await file.write(buf.subarray(put));
}

/**
 * Copies the bytes of `extents` from `src` to the same offsets in `dst`; returns the bytes copied.
 * `onChunk`, when given, runs after each chunk is written (tests inject failures there).
 */
export async function copyExtents(
  src: Deno.FsFile,
  dst: Deno.FsFile,
  extents: readonly Extent[],
  onChunk?: (copied: number) => void | Promise<void>,
): Promise<number> {
  const buf = new Uint8Array(COPY_CHUNK);
  let copied = 0;
  for (const [start, end] of extents) {
    for (let off = start; off < end; off += COPY_CHUNK) {
      const chunk = buf.subarray(0, Math.min(COPY_CHUNK, end - off));
      await readFullAt(src, chunk, off);
      await writeFullAt(dst, chunk, off);
      copied += chunk.length;
      await onChunk?.(copied);
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
  using srcFile = await Deno.open(src, { read: true });
  using dstFile = await Deno.open(dst, { write: true });
  return await copyExtents(srcFile, dstFile, extents);
}

/**
 * Copies `src` to a new file `dst` (which must not exist) preserving holes: only data regions
 * are written, then the size is set with ftruncate. On failure the partial `dst` is removed.
 * Returns the bytes copied.
 */
export async function sparseCopy(src: string, dst: string, mode = 0o600): Promise<number> {
  const { size, extents } = layoutOf(src);
  using srcFile = await Deno.open(src, { read: true });
  const dstFile = await Deno.open(dst, { write: true, createNew: true, mode });
  try {
    const copied = await copyExtents(srcFile, dstFile, extents);
    await dstFile.truncate(size);
    return copied;
  } catch (e) {
    dstFile.close();
    await Deno.remove(dst).catch(() => {});
    throw e;
  } finally {
    try {
      dstFile.close();
    } catch { /* closed on the failure path */ }
  }
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
