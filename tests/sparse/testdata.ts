/**
 * Test helpers for sparse files: build a file from data regions, read it back, and compute the
 * expected result of laying one file's regions over another in memory.
 *
 * @module
 */
import { extents } from "../../lib/sparse/extents.ts";

export const MiB = 1024 * 1024;

/** A region `[offset, length, fill byte]` of a test file. */
export type Region = readonly [offset: number, length: number, fill: number];

/** Creates `path` with `size` bytes, holes everywhere except `regions`, filled with a pattern. */
export async function writeSparse(path: string, size: number, regions: Region[]): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  await f.truncate(size);
  for (const [off, len, fill] of regions) {
    const buf = new Uint8Array(len);
    for (let i = 0; i < len; i++) buf[i] = (fill + i * 7) & 0xff;
    await f.seek(off, Deno.SeekMode.Start);
    let put = 0;
    while (put < len) put += await f.write(buf.subarray(put));
  }
}

/** The bytes of `path` (small test files only). */
export function readAll(path: string): Promise<Uint8Array> {
  return Deno.readFile(path);
}

/** `base` with every data region of the file `deltaPath` (whose bytes are `delta`) laid over it. */
export async function overlayInMemory(
  base: Uint8Array,
  delta: Uint8Array,
  deltaPath: string,
): Promise<Uint8Array> {
  const out = base.slice();
  for await (const [start, end] of extents(deltaPath)) out.set(delta.subarray(start, end), start);
  return out;
}

/** Bytes allocated on disk for `path` (st_blocks × 512). */
export async function allocatedBytes(path: string): Promise<number> {
  return ((await Deno.stat(path)).blocks ?? 0) * 512;
}

/** sha256 of a byte array, hex. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
