/**
 * libc: the few Linux system calls Deno has no API for, reached through Deno FFI.
 *
 * Contract: every wrapper is synchronous (so errno is read on the thread that set it) except
 * {@link readFd}, which runs on Deno's FFI worker thread and so reports failures without errno.
 * Raw fds returned here are owned by the caller: close them with {@link closeFd}.
 * Struct layouts are LP64 Linux (x86_64 and aarch64 share them).
 *
 * @module
 */

const LIBC_CANDIDATES = [
  "libc.so.6",
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
];

const SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  // The same recvmsg(2), run on Deno's FFI thread so a blocking socket does not stall the loop.
  recvmsgOffThread: {
    name: "recvmsg",
    parameters: ["i32", "buffer", "i32"],
    result: "isize",
    nonblocking: true,
  },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32", nonblocking: true },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  // Returns the error number itself (0 on success), not -1 with errno.
  posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  preadv2: { parameters: ["i32", "buffer", "i32", "i64", "i32"], result: "isize" },
  copy_file_range: {
    parameters: ["i32", "buffer", "i32", "buffer", "usize", "u32"],
    result: "isize",
  },
  // The same pwrite(2) on Deno's FFI thread pool (see pio.ts pwriteOffThread).
  pwriteOffThread: {
    name: "pwrite",
    parameters: ["i32", "buffer", "usize", "i64"],
    result: "isize",
    nonblocking: true,
  },
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let libc: Libc | undefined;

/** The loaded libc symbols; loaded on first use so modules importing this stay cheap. */
export function sym(): Libc {
  if (!libc) {
    let lastError: unknown;
    for (const name of LIBC_CANDIDATES) {
      try {
        libc = Deno.dlopen(name, SYMBOLS).symbols;
        break;
      } catch (e) {
        lastError = e;
      }
    }
    if (!libc) throw new Error(`cannot load libc through Deno FFI: ${lastError}`);
  }
  return libc;
}

/** An error from a failed system call, carrying the errno and its name. */
export class SyscallError extends Error {
  constructor(readonly call: string, readonly errno: number, detail = "") {
    super(`${call}${detail ? ` ${detail}` : ""}: ${describeErrno(errno)}`);
    this.name = "SyscallError";
  }
}

/** errno values this project reacts to. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  EINVAL: 22,
  ENOTTY: 25,
  EPIPE: 32,
  ERANGE: 34,
  ENOSYS: 38,
  ENOTSUP: 95,
  ECONNREFUSED: 111,
} as const;

function describeErrno(errno: number): string {
  const p = sym().strerror(errno);
  const text = p ? Deno.UnsafePointerView.getCString(p) : "unknown error";
  const name = Object.entries(Errno).find(([, v]) => v === errno)?.[0];
  return name ? `${text} (${name})` : `${text} (errno ${errno})`;
}

/** errno of the last failed synchronous call on this thread. */
export function lastErrno(): number {
  const p = sym().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** Throws a SyscallError for `call` when `result` is negative; otherwise returns it. */
export function check<T extends number | bigint>(call: string, result: T, detail = ""): T {
  if (result < 0) throw new SyscallError(call, lastErrno(), detail);
  return result;
}

const encoder = new TextEncoder();

/** A NUL-terminated C string. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) throw new Error(`string contains NUL: ${JSON.stringify(s)}`);
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** The address of a buffer, as the u64 a C struct field holds. */
export function addressOf(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0x800;
export const O_CLOEXEC = 0x80000;

/** open(2); returns a raw fd. */
export function openFd(path: string, flags: number, mode = 0): number {
  return check("open", sym().open(cString(path), flags | O_CLOEXEC, mode), path);
}

/** close(2); closing an fd twice is a bug, so EBADF throws. */
export function closeFd(fd: number): void {
  check("close", sym().close(fd), `fd ${fd}`);
}

/** write(2) of the whole buffer (loops over short writes). */
export function writeFd(fd: number, data: Uint8Array<ArrayBuffer>): void {
  let off = 0;
  while (off < data.length) {
    const n = Number(
      check("write", sym().write(fd, data.subarray(off), BigInt(data.length - off))),
    );
    off += n;
  }
}

/**
 * read(2) on Deno's FFI thread, so a blocking fd (tap, socket) does not stall the event loop.
 * Returns the bytes read (empty at EOF). errno is not available off-thread.
 */
export async function readFd(fd: number, max = 65536): Promise<Uint8Array<ArrayBuffer>> {
  const buf = new Uint8Array(max);
  const n = Number(await sym().read(fd, buf, BigInt(max)));
  if (n < 0) throw new Error(`read fd ${fd} failed`);
  return buf.slice(0, n);
}

const F_GETFL = 3;
const F_SETFL = 4;

/** Sets or clears O_NONBLOCK on a raw fd. */
export function setNonBlocking(fd: number, on: boolean): void {
  const flags = check("fcntl", sym().fcntl(fd, F_GETFL, 0));
  check("fcntl", sym().fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK));
}

/** fstat(2) fields this project needs: the device and inode identify an open file. */
export function fstatFd(fd: number): { dev: bigint; ino: bigint; size: bigint; mode: number } {
  const st = new Uint8Array(256);
  check("fstat", sym().fstat(fd, st), `fd ${fd}`);
  const v = new DataView(st.buffer);
  if (Deno.build.arch === "aarch64") {
    return {
      dev: v.getBigUint64(0, true),
      ino: v.getBigUint64(8, true),
      mode: v.getUint32(16, true),
      size: v.getBigInt64(48, true),
    };
  }
  return {
    dev: v.getBigUint64(0, true),
    ino: v.getBigUint64(8, true),
    mode: v.getUint32(24, true),
    size: v.getBigInt64(48, true),
  };
}
