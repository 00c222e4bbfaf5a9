/**
 * Unix stream sockets with file-descriptor passing (SCM_RIGHTS), which Deno's own socket API lacks.
 *
 * cloud-hypervisor receives tap fds as SCM_RIGHTS ancillary data attached to the same sendmsg
 * that carries the HTTP request (vm.add-net, vm.restore). {@link UnixFdSocket} sends bytes with
 * fds attached and reads the reply; it owns its socket fd, not the fds it sends.
 *
 * @module
 */
import { addressOf, check, closeFd, cString, readFd, sym, writeFd } from "./libc.ts";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const CMSG_HEADER = 16; // cmsg_len (size_t), cmsg_level (int), cmsg_type (int)
const MSGHDR_SIZE = 56;
/** The kernel's SCM_MAX_FD. */
export const MAX_FDS_PER_MESSAGE = 253;

function align8(n: number): number {
  return (n + 7) & ~7;
}

function sockaddrUn(path: string): Uint8Array<ArrayBuffer> {
  const p = cString(path);
  if (p.length > 108) throw new Error(`unix socket path too long (${p.length - 1} > 107): ${path}`);
  const addr = new Uint8Array(2 + p.length);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(p, 2);
  return addr;
}

/** A connected unix stream socket that can send fds. */
export class UnixFdSocket {
  #fd: number;
  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Connects to the unix socket at `path` (blocking connect; local sockets answer at once). */
  static connect(path: string): UnixFdSocket {
    const fd = check("socket", sym().socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    try {
      const addr = sockaddrUn(path);
      check("connect", sym().connect(fd, addr, addr.length), path);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    return new UnixFdSocket(fd);
  }

  /** The raw socket fd (for tests). */
  get fd(): number {
    return this.#fd;
  }

  /**
   * Sends `data`; the first sendmsg carries `fds` as SCM_RIGHTS, the rest of a short write
   * follows with plain writes.
   */
  send(data: Uint8Array<ArrayBuffer>, fds: readonly number[] = []): void {
    if (fds.length > MAX_FDS_PER_MESSAGE) {
      throw new Error(`cannot pass ${fds.length} fds in one message (max ${MAX_FDS_PER_MESSAGE})`);
    }
    if (fds.length === 0) {
      writeFd(this.#fd, data);
      return;
    }
    const control = new Uint8Array(CMSG_HEADER + align8(4 * fds.length));
    const cv = new DataView(control.buffer);
    cv.setBigUint64(0, BigInt(CMSG_HEADER + 4 * fds.length), true);
    cv.setInt32(8, SOL_SOCKET, true);
    cv.setInt32(12, SCM_RIGHTS, true);
    fds.forEach((fd, i) => cv.setInt32(CMSG_HEADER + 4 * i, fd, true));

    const bufs = messageBuffers(data, control);
    const sent = Number(check("sendmsg", sym().sendmsg(this.#fd, bufs.msg, MSG_NOSIGNAL)));
    if (sent < data.length) writeFd(this.#fd, data.subarray(sent));
  }

  /** Reads up to `max` bytes; empty at EOF. Runs off the event loop thread. */
  read(max = 65536): Promise<Uint8Array<ArrayBuffer>> {
    return readFd(this.#fd, max);
  }

  /** Abandons the connection: a pending {@link read} returns EOF. Call {@link close} after. */
  abort(): void {
    if (this.#fd >= 0) shutdownSocket(this.#fd);
  }

  close(): void {
    if (this.#fd >= 0) {
      const fd = this.#fd;
      this.#fd = -1;
      closeFd(fd);
    }
  }
}

/**
 * The buffers of one sendmsg(2)/recvmsg(2) call: a msghdr with one iovec over all of `data` and
 * `control` as its ancillary data. The msghdr holds raw addresses, so keep the returned object
 * (which references every buffer) alive until the call returns.
 */
function messageBuffers(data: Uint8Array<ArrayBuffer>, control: Uint8Array<ArrayBuffer>) {
  const iov = new Uint8Array(16);
  const iovView = new DataView(iov.buffer);
  iovView.setBigUint64(0, addressOf(data), true);
  iovView.setBigUint64(8, BigInt(data.length), true);
  const msg = new Uint8Array(MSGHDR_SIZE);
  const mv = new DataView(msg.buffer);
  mv.setBigUint64(16, addressOf(iov), true);
  mv.setBigUint64(24, 1n, true);
  mv.setBigUint64(32, addressOf(control), true);
  mv.setBigUint64(40, BigInt(control.length), true);
  return { data, iov, control, msg };
}

/** Empty buffers for one recvmsg(2) of up to `max` bytes and `maxFds` fds. */
function recvBuffers(max: number, maxFds: number) {
  return messageBuffers(new Uint8Array(max), new Uint8Array(CMSG_HEADER + align8(4 * maxFds)));
}

/** The bytes and fds a finished recvmsg(2) of `n` bytes left in `bufs`. */
function received(
  bufs: ReturnType<typeof recvBuffers>,
  n: number,
): { data: Uint8Array<ArrayBuffer>; fds: number[] } {
  const { data, control, msg } = bufs;
  const mv = new DataView(msg.buffer);
  const controlLen = Number(mv.getBigUint64(40, true));
  const fds: number[] = [];
  const cv = new DataView(control.buffer);
  let off = 0;
  while (off + CMSG_HEADER <= controlLen) {
    const len = Number(cv.getBigUint64(off, true));
    if (len < CMSG_HEADER) break;
    if (cv.getInt32(off + 8, true) === SOL_SOCKET && cv.getInt32(off + 12, true) === SCM_RIGHTS) {
      for (let p = off + CMSG_HEADER; p + 4 <= off + len; p += 4) fds.push(cv.getInt32(p, true));
    }
    off += align8(len);
  }
  return { data: data.slice(0, n), fds };
}

/**
 * recvmsg(2) on a connected unix socket fd: the bytes and any fds received (SCM_RIGHTS, with
 * close-on-exec). Blocking; meant for tests and doubles that accept with their own listener fd.
 */
export function recvWithFds(
  fd: number,
  max = 65536,
  maxFds = MAX_FDS_PER_MESSAGE,
): { data: Uint8Array<ArrayBuffer>; fds: number[] } {
  const bufs = recvBuffers(max, maxFds);
  const n = Number(check("recvmsg", sym().recvmsg(fd, bufs.msg, MSG_CMSG_CLOEXEC)));
  return received(bufs, n);
}

/**
 * {@link recvWithFds} on Deno's FFI thread: waits for data without stalling the event loop.
 * Empty data means EOF. Failures carry no errno (it is not readable off-thread).
 */
export async function recvWithFdsAsync(
  fd: number,
  max = 65536,
  maxFds = MAX_FDS_PER_MESSAGE,
): Promise<{ data: Uint8Array<ArrayBuffer>; fds: number[] }> {
  const bufs = recvBuffers(max, maxFds);
  const n = Number(await sym().recvmsgOffThread(fd, bufs.msg, MSG_CMSG_CLOEXEC));
  if (n < 0) throw new Error(`recvmsg on fd ${fd} failed`);
  return received(bufs, n);
}

const SHUT_RDWR = 2;

/**
 * shutdown(2) both directions: wakes a read blocked on the FFI thread (it returns EOF). For
 * abandoning a connection only; a live request must never be half-closed.
 */
export function shutdownSocket(fd: number): void {
  sym().shutdown(fd, SHUT_RDWR);
}

/** A listening unix socket with raw fds, so a test peer can recvmsg the fds sent to it. */
export class UnixFdListener {
  #fd: number;
  private constructor(fd: number) {
    this.#fd = fd;
  }

  static listen(path: string): UnixFdListener {
    const lib = sym();
    const fd = check("socket", lib.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const addr = sockaddrUn(path);
    try {
      check("bind", lib.bind(fd, addr, addr.length), path);
      check("listen", lib.listen(fd, 16));
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    return new UnixFdListener(fd);
  }

  /** Accepts one connection on Deno's FFI thread; returns its raw fd. */
  async accept(): Promise<number> {
    const fd = await sym().accept4(this.#fd, null, null, SOCK_CLOEXEC);
    if (fd < 0) throw new Error("accept failed");
    return fd;
  }

  close(): void {
    if (this.#fd >= 0) closeFd(this.#fd);
    this.#fd = -1;
  }
}
