/**
 * Positioned I/O on raw fds (pread/pwrite/ftruncate through Deno FFI): the sparse copy and merge
 * move data straight between a Uint8Array and the page cache with one call per chunk, without
 * the seek + async op pair Deno.FsFile needs per read or write.
 *
 * Contract: synchronous (errno read on the calling thread) except {@link pwriteOffThread}; short
 * reads/writes are looped over; failures throw a SyscallError naming the fd and offset.
 *
 * @module
 */
import { lastErrno, SyscallError } from "./libc.ts";

const SYMBOLS = {
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwriteOffThread: {
    name: "pwrite",
    parameters: ["i32", "buffer", "usize", "i64"],
    result: "isize",
    nonblocking: true,
  },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
} as const;

let lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;

function pio() {
  if (!lib) {
    let lastError: unknown;
    for (
      const name of [
        "libc.so.6",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
      ]
    ) {
      try {
        lib = Deno.dlopen(name, SYMBOLS).symbols;
        break;
      } catch (e) {
        lastError = e;
      }
    }
    if (!lib) throw new Error(`cannot load libc pread/pwrite through Deno FFI: ${lastError}`);
  }
  return lib;
}

const EINTR = 4;

/** Reads exactly `buf.length` bytes at `offset`; throws on EOF before that. */
export function preadFull(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number): void {
  let got = 0;
  while (got < buf.length) {
    const n = Number(
      pio().pread(fd, buf.subarray(got), BigInt(buf.length - got), BigInt(offset + got)),
    );
    if (n < 0) {
      const errno = lastErrno();
      if (errno === EINTR) continue;
      throw new SyscallError("pread", errno, `fd ${fd} offset ${offset + got}`);
    }
    if (n === 0) throw new Error(`pread fd ${fd}: unexpected end of file at ${offset + got}`);
    got += n;
  }
}

/** Writes all of `buf` at `offset`. */
export function pwriteFull(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number): void {
  let put = 0;
  while (put < buf.length) {
    const n = Number(
      pio().pwrite(fd, buf.subarray(put), BigInt(buf.length - put), BigInt(offset + put)),
    );
    if (n < 0) {
      const errno = lastErrno();
      if (errno === EINTR) continue;
      throw new SyscallError("pwrite", errno, `fd ${fd} offset ${offset + put}`);
    }
    put += n;
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
    await pio().pwriteOffThread(fd, buf, BigInt(buf.length), BigInt(offset)),
  );
  if (n === buf.length) return;
  const done = Math.max(n, 0);
  pwriteFull(fd, buf.subarray(done), offset + done);
}

/** Sets the size of the file open at `fd`. */
export function truncateFd(fd: number, size: number): void {
  if (pio().ftruncate(fd, BigInt(size)) < 0) {
    throw new SyscallError("ftruncate", lastErrno(), `fd ${fd} size ${size}`);
  }
}
