/**
 * Hybrid vsock dial: reach a guest vsock port through cloud-hypervisor's host-side unix socket.
 *
 * Protocol (firecracker/cloud-hypervisor "hybrid vsock"): connect the unix socket, write
 * `CONNECT <port>\n`, read one line; `OK <host port>\n` means the stream now reaches the guest
 * port and every later byte belongs to the caller (here: ttrpc). The reply is read one byte at a
 * time so nothing past the newline is consumed. When nothing listens on the guest port yet, the
 * VMM closes the connection without a reply; that, and a socket file that is missing or refuses
 * connections (VMM still starting), are retried until the overall deadline. Any other reply is
 * an error. Every failed attempt closes its socket.
 *
 * @module
 */

/** Options of {@link dialHybridVsock}. */
export interface HybridVsockDialOptions {
  /** Aborts the dial (and closes the attempt in progress). */
  signal?: AbortSignal;
  /** Overall time limit for all attempts; default 10 000 ms. */
  deadlineMs?: number;
  /** Pause between attempts; default 50 ms. */
  retryDelayMs?: number;
  /** Observes each retryable failure (for logs and tests). */
  onRetry?: (reason: string, attempt: number) => void;
}

/** A dial that failed for good: bad reply, deadline, abort, or an unexpected socket error. */
export class HybridVsockDialError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HybridVsockDialError";
  }
}

const DEFAULT_DEADLINE_MS = 10_000;
const DEFAULT_RETRY_DELAY_MS = 50;
/** "OK 4294967295\n" is 14 bytes; anything much longer is not a hybrid vsock reply. */
const MAX_REPLY_LENGTH = 32;
const REPLY_PATTERN = /^OK (\d+)\n$/;
/** setTimeout's largest delay; longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type Attempt = { conn: Deno.UnixConn } | { retry: string };

/**
 * Connects to guest vsock `port` through the hybrid vsock socket at `socketPath`.
 * The returned connection is positioned right after the `OK <n>\n` reply.
 *
 * @throws HybridVsockDialError when the deadline passes, the signal aborts, or the reply is not
 *   `OK <n>`.
 * @example
 * ```ts
 * const conn = await dialHybridVsock(`${vmDir}/kata.hvsock`, 1024, { deadlineMs: 30_000 });
 * const client = new TtrpcClient(conn);
 * ```
 */
export async function dialHybridVsock(
  socketPath: string,
  port: number,
  options: HybridVsockDialOptions = {},
): Promise<Deno.UnixConn> {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff_ffff) {
    throw new RangeError(`hybrid vsock dial: port ${port} is not a vsock port (0..2^32-1)`);
  }
  const { signal } = options;
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
  const what = `hybrid vsock dial ${socketPath} port ${port}`;
  const deadline = Date.now() + deadlineMs;
  let lastReason = "no attempt made";
  for (let attempt = 1;; attempt++) {
    if (signal?.aborted) throw aborted(what, signal);
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw deadlineError(what, deadlineMs, lastReason);
    const outcome = await attemptOnce(socketPath, port, remaining, what, signal);
    if ("conn" in outcome) return outcome.conn;
    lastReason = outcome.retry;
    options.onRetry?.(lastReason, attempt);
    if (signal?.aborted) throw aborted(what, signal);
    if (deadline - Date.now() <= retryDelayMs) throw deadlineError(what, deadlineMs, lastReason);
    await pause(retryDelayMs, signal);
  }
}

async function attemptOnce(
  socketPath: string,
  port: number,
  remainingMs: number,
  what: string,
  signal: AbortSignal | undefined,
): Promise<Attempt> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socketPath });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { retry: "socket file does not exist yet" };
    if (e instanceof Deno.errors.ConnectionRefused) return { retry: "connection refused" };
    // A full accept backlog on a non-blocking unix connect (EAGAIN): the VMM is busy.
    if (e instanceof Deno.errors.WouldBlock) return { retry: "accept backlog full" };
    throw new HybridVsockDialError(`${what}: connect failed: ${(e as Error).message}`, {
      cause: e,
    });
  }
  // Closing the connection is how a deadline or abort interrupts a pending write or read.
  let interrupted: "deadline" | "abort" | null = null;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const timer = setTimeout(() => {
    interrupted = "deadline";
    close();
  }, Math.min(remainingMs, MAX_TIMER_MS));
  const onAbort = () => {
    interrupted = "abort";
    close();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  let keep = false;
  try {
    const request = new TextEncoder().encode(`CONNECT ${port}\n`);
    try {
      for (let off = 0; off < request.length;) off += await conn.write(request.subarray(off));
    } catch (e) {
      if (interrupted) throw e;
      return { retry: `writing CONNECT failed: ${(e as Error).message}` };
    }
    const reply = await readReplyLine(conn, what);
    if (reply === null) return { retry: "connection closed without a reply (agent not listening)" };
    if (!REPLY_PATTERN.test(reply)) {
      throw new HybridVsockDialError(
        `${what}: unexpected reply ${JSON.stringify(reply)}, want "OK <port>"; ` +
          "is this a cloud-hypervisor vsock socket?",
      );
    }
    keep = true;
    return { conn };
  } catch (e) {
    if (interrupted === "abort") throw aborted(what, signal!);
    // The deadline fired mid-attempt; the caller sees no time left and reports the deadline.
    if (interrupted === "deadline") return { retry: "no reply before the deadline" };
    throw e;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    if (!keep) close();
  }
}

/**
 * Reads the reply line one byte per read, so the connection holds everything after it.
 * Returns null on EOF or reset, a partial line included: the VMM gave up on the connection.
 */
async function readReplyLine(conn: Deno.UnixConn, what: string): Promise<string | null> {
  const byte = new Uint8Array(1);
  const line: number[] = [];
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(byte);
    } catch (e) {
      if (e instanceof Deno.errors.ConnectionReset) return null;
      throw e;
    }
    if (n === null) return null;
    if (n === 0) continue;
    line.push(byte[0]);
    if (byte[0] === 0x0a) return new TextDecoder().decode(Uint8Array.from(line));
    if (line.length >= MAX_REPLY_LENGTH) {
      throw new HybridVsockDialError(
        `${what}: reply exceeds ${MAX_REPLY_LENGTH} bytes without a newline ` +
          `(${JSON.stringify(new TextDecoder().decode(Uint8Array.from(line)))}); ` +
          "is this a cloud-hypervisor vsock socket?",
      );
    }
  }
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(ms, MAX_TIMER_MS));
    signal?.addEventListener("abort", done, { once: true });
  });
}

function aborted(what: string, signal: AbortSignal): HybridVsockDialError {
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
  return new HybridVsockDialError(`${what}: aborted: ${reason}`, { cause: signal.reason });
}

function deadlineError(what: string, deadlineMs: number, lastReason: string): HybridVsockDialError {
  return new HybridVsockDialError(
    `${what}: no "OK" reply within ${deadlineMs} ms (last attempt: ${lastReason}); ` +
      "check that the VM booted and the agent listens on that port",
  );
}
