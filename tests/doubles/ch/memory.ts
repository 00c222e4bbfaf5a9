/**
 * The CH double's guest memory: a sparse set of 4 KiB pages, written to a snapshot's
 * `memory-ranges` as a file of memory.size bytes where only populated pages hold data (as CH
 * does with `memory.shared: true`).
 *
 * Layout the double defines (its own, not CH's):
 * - page 0: a header written at boot, magic `ch-double-memory` + u64 LE memory size;
 * - from {@link STATE_OFFSET}: the guest's state, magic `GSTATE01`, u32 LE length, sha256 (32
 *   bytes), then the bytes {@link Guest.snapshot} returned. Rewritten at every snapshot.
 *
 * A restore refuses an image whose size differs, whose header is missing (e.g. an unmerged
 * OnDemand delta) or whose state region is missing or does not match state.json's digest.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { extentsOfFd } from "../../../lib/sparse/extents.ts";
import { closeFd, O_RDONLY, openFd } from "../../../lib/ffi/libc.ts";

export const PAGE = 4096;
export const STATE_OFFSET = 2 << 20;
const HEADER_MAGIC = new TextEncoder().encode("ch-double-memory");
const STATE_MAGIC = new TextEncoder().encode("GSTATE01");
const STATE_HEADER = 8 + 4 + 32;

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Guest memory as pages; `touched` records pages written since the last boot or restore. */
export class GuestMemory {
  readonly pages = new Map<number, Uint8Array>();
  readonly touched = new Set<number>();

  constructor(readonly size: number) {
    if (size < STATE_OFFSET + 64 * PAGE) {
      throw new Error(
        `memory size ${size} too small for the double (need ${STATE_OFFSET + 64 * PAGE})`,
      );
    }
  }

  /** Writes `data` at `offset`, page by page, marking pages touched. */
  write(offset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const index = Math.floor(at / PAGE);
      const within = at % PAGE;
      const n = Math.min(PAGE - within, data.length - done);
      let page = this.pages.get(index);
      if (!page) this.pages.set(index, page = new Uint8Array(PAGE));
      page.set(data.subarray(done, done + n), within);
      this.touched.add(index);
      done += n;
    }
  }

  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let done = 0; done < length;) {
      const at = offset + done;
      const index = Math.floor(at / PAGE);
      const within = at % PAGE;
      const n = Math.min(PAGE - within, length - done);
      const page = this.pages.get(index);
      if (page) out.set(page.subarray(within, within + n), done);
      done += n;
    }
    return out;
  }

  /** What boot leaves in memory: the header page. */
  writeBootHeader(): void {
    const header = new Uint8Array(24);
    header.set(HEADER_MAGIC);
    new DataView(header.buffer).setBigUint64(16, BigInt(this.size), true);
    this.write(0, header);
  }

  /** Stores the guest state bytes (length-prefixed, with their digest); returns the digest. */
  writeGuestState(state: Uint8Array): string {
    if (STATE_OFFSET + STATE_HEADER + state.length > this.size) {
      throw new Error(`guest state of ${state.length} bytes does not fit in memory`);
    }
    const digest = sha256Hex(state);
    const region = new Uint8Array(STATE_HEADER + state.length);
    region.set(STATE_MAGIC);
    new DataView(region.buffer).setUint32(8, state.length, true);
    region.set(hexBytes(digest), 12);
    region.set(state, STATE_HEADER);
    this.write(STATE_OFFSET, region);
    return digest;
  }

  /** The guest state bytes, or an error message saying what is missing. */
  readGuestState(expectedDigest: string): Uint8Array | string {
    const header = this.read(0, 24);
    if (!equalBytes(header.subarray(0, 16), HEADER_MAGIC)) {
      return "memory image has no boot header page (incomplete image: an OnDemand delta not merged onto its base?)";
    }
    const region = this.read(STATE_OFFSET, STATE_HEADER);
    if (!equalBytes(region.subarray(0, 8), STATE_MAGIC)) {
      return "memory image has no guest state region (incomplete or truncated image)";
    }
    const length = new DataView(region.buffer).getUint32(8, true);
    if (STATE_OFFSET + STATE_HEADER + length > this.size) {
      return "guest state length overruns memory";
    }
    const state = this.read(STATE_OFFSET + STATE_HEADER, length);
    const digest = sha256Hex(state);
    if (digest !== expectedDigest) {
      return `guest state in memory (sha256 ${digest.slice(0, 12)}) does not match state.json (${
        expectedDigest.slice(0, 12)
      }): memory-ranges and state.json come from different snapshots`;
    }
    return state;
  }

  /** Loads every data extent of a memory-ranges file into pages (not marked touched). */
  loadFrom(path: string, onlyPages?: (index: number) => boolean): void {
    const fd = openFd(path, O_RDONLY);
    try {
      using file = Deno.openSync(path);
      for (const [start, end] of extentsOfFd(fd)) {
        for (let index = Math.floor(start / PAGE); index * PAGE < end; index++) {
          if (index * PAGE >= this.size || (onlyPages && !onlyPages(index))) continue;
          if (this.touched.has(index)) continue;
          const page = new Uint8Array(PAGE);
          file.seekSync(index * PAGE, Deno.SeekMode.Start);
          let got = 0;
          while (got < PAGE) {
            const n = file.readSync(page.subarray(got));
            if (n === null) break;
            got += n;
          }
          if (page.some((b) => b !== 0)) this.pages.set(index, page);
        }
      }
    } finally {
      closeFd(fd);
    }
  }

  /** Writes `memory-ranges` at `path` (created exclusively): `size` bytes, data only in `which`. */
  writeRanges(path: string, which: Iterable<number>): void {
    using file = Deno.openSync(path, { write: true, createNew: true });
    file.truncateSync(this.size);
    for (const index of [...which].sort((a, b) => a - b)) {
      const page = this.pages.get(index);
      if (!page) continue;
      file.seekSync(index * PAGE, Deno.SeekMode.Start);
      let off = 0;
      while (off < PAGE) off += file.writeSync(page.subarray(off));
    }
  }
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * A digest of a disk image's content that treats holes and zero blocks alike: sha256 over the
 * size and every non-zero 4 KiB block with its offset. Reads only data extents.
 */
export function diskDigest(path: string): string {
  const hash = createHash("sha256");
  const fd = openFd(path, O_RDONLY);
  try {
    using file = Deno.openSync(path);
    const size = file.statSync().size;
    hash.update(`size ${size}\n`);
    const chunk = new Uint8Array(1 << 20);
    const offsetBytes = new Uint8Array(8);
    const offsetView = new DataView(offsetBytes.buffer);
    for (const [start, end] of extentsOfFd(fd)) {
      let at = start - (start % PAGE);
      file.seekSync(at, Deno.SeekMode.Start);
      while (at < end) {
        const want = Math.min(chunk.length, end - at);
        let got = 0;
        while (got < want) {
          const n = file.readSync(chunk.subarray(got, want));
          if (n === null) break;
          got += n;
        }
        if (got === 0) break;
        for (let b = 0; b < got; b += PAGE) {
          const block = chunk.subarray(b, Math.min(b + PAGE, got));
          if (block.some((v) => v !== 0)) {
            offsetView.setBigUint64(0, BigInt(at + b), true);
            hash.update(offsetBytes);
            hash.update(block);
          }
        }
        at += got;
      }
    }
  } finally {
    closeFd(fd);
  }
  return hash.digest("hex");
}
