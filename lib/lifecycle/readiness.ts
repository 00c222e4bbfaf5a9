/**
 * Readiness: a container with an HTTP probe is ready once `GET http://169.254.17.2:<port><path>`
 * answers 2xx (upstream counts exactly 200; every 2xx passes here, as the lifecycle issue asks).
 * Polled with a short per-request timeout until the RPC's signal fires or the readiness limit
 * (`serve --readyz-timeout`, so an RPC without a deadline does not poll forever) passes; the
 * error names the container, which limit ended it and what it last answered.
 *
 * The prober is injectable: the default one speaks HTTP/1.1 over TCP from the worker's network
 * namespace (the pod's), through the actor network's DNAT-free path to the guest address.
 *
 * @module
 */
import { type ReadyzProbe, RuntimeError } from "../api/runtime.ts";
import { ACTOR_IP } from "../net/plan.ts";

/** What one probe request saw: an HTTP status, or why there was none. */
export type ProbeOutcome = { status: number } | { error: string };

/** Where a probe goes. `vsockSocket` is the VM's hybrid-vsock socket (for test probers). */
export interface ProbeTarget {
  host: string;
  port: number;
  path: string;
  vsockSocket: string;
}

/** Sends one probe request; must settle by `signal` (a per-request timeout). */
export type Prober = (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeOutcome>;

/** Per-request limit of the default probe loop. */
export const PROBE_REQUEST_TIMEOUT_MS = 1000;
/** Pause between probe requests. */
export const PROBE_INTERVAL_MS = 100;

/** The status code in an HTTP/1.x status line, or undefined. */
export function parseStatusLine(line: string): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(line);
  return m ? Number(m[1]) : undefined;
}

/** The HTTP/1.1 request a probe sends (connection closed after the answer). */
export function probeRequest(host: string, port: number, path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: ateom-microvm-readyz\r\n` +
    "Accept: */*\r\nConnection: close\r\n\r\n";
}

/** Reads from `conn` until the first line is complete; returns the status or an error. */
export async function readStatus(conn: Deno.Conn): Promise<ProbeOutcome> {
  const buf = new Uint8Array(512);
  let text = "";
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
    if (text.includes("\r\n") || text.length > 4096) break;
  }
  const line = text.split("\r\n")[0];
  const status = parseStatusLine(line);
  return status === undefined
    ? { error: `not an HTTP answer: ${JSON.stringify(line.slice(0, 80))}` }
    : { status };
}

/** The default prober: TCP to `host:port` from this process's netns. */
export const tcpProber: Prober = async (target, signal) => {
  let conn: Deno.TcpConn | undefined;
  const onAbort = () => conn?.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    conn = await Deno.connect({ hostname: target.host, port: target.port, signal });
    await conn.write(new TextEncoder().encode(probeRequest(target.host, target.port, target.path)));
    return await readStatus(conn);
  } catch (e) {
    return { error: signal.aborted ? "no answer in time" : (e as Error).message };
  } finally {
    signal.removeEventListener("abort", onAbort);
    try {
      conn?.close();
    } catch {
      // closed by the abort
    }
  }
};

function describe(outcome: ProbeOutcome | undefined): string {
  if (!outcome) return "no probe completed";
  return "status" in outcome ? `HTTP ${outcome.status}` : outcome.error;
}

/** Limits of {@link waitReady}. */
export interface WaitReadyOptions {
  /** Total polling time; absent: until the RPC's signal fires. */
  limitMs?: number;
  /** Per-request limit (default {@link PROBE_REQUEST_TIMEOUT_MS}). */
  requestTimeoutMs?: number;
  /** Fires, with a one-line reason, when the VM can no longer become ready (its VMM exited). */
  vmGone?: AbortSignal;
}

/**
 * Parses `serve --readyz-timeout`: a positive whole number with a unit `ms`, `s`, `m` or `h`
 * (`90s`, `5m`, `1500ms`); returns milliseconds. Throws a one-line error otherwise.
 */
export function parseReadyzTimeout(text: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(text.trim());
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  const ms = m ? Number(m[1]) * scale[m[2] as keyof typeof scale] : 0;
  if (!m || ms <= 0 || !Number.isSafeInteger(ms)) {
    throw new Error(
      `--readyz-timeout ${
        JSON.stringify(text)
      } is not a positive duration: use e.g. 90s, 5m or 1500ms`,
    );
  }
  return ms;
}

/** `ms` for a message: whole seconds as "N s", else "N ms". */
function durationText(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/**
 * Polls `probe` of `container` until it answers 2xx. Rejects when `rpcSignal` fires or
 * `limitMs` passes with a DEADLINE_EXCEEDED {@link RuntimeError} naming the container, the
 * limit that ended it, the URL and the last answer; when `vmGone` fires, at once with its reason.
 */
export async function waitReady(
  container: string,
  probe: ReadyzProbe,
  vsockSocket: string,
  prober: Prober,
  rpcSignal: AbortSignal,
  options: WaitReadyOptions = {},
): Promise<{ attempts: number }> {
  const target: ProbeTarget = { host: ACTOR_IP, port: probe.port, path: probe.path, vsockSocket };
  const url = `http://${ACTOR_IP}:${probe.port}${probe.path}`;
  const requestTimeoutMs = options.requestTimeoutMs ?? PROBE_REQUEST_TIMEOUT_MS;
  const signal = AbortSignal.any([
    rpcSignal,
    ...(options.limitMs === undefined ? [] : [AbortSignal.timeout(options.limitMs)]),
    ...(options.vmGone ? [options.vmGone] : []),
  ]);
  let last: ProbeOutcome | undefined;
  for (let attempts = 1;; attempts++) {
    if (options.vmGone?.aborted && !rpcSignal.aborted) {
      throw new Error(
        `container ${container} did not become ready: ${options.vmGone.reason} (GET ${url} last answered ${
          describe(last)
        })`,
      );
    }
    if (signal.aborted) {
      const within = rpcSignal.aborted
        ? ""
        : ` within ${durationText(options.limitMs!)} (the readiness limit, serve --readyz-timeout)`;
      const before = rpcSignal.aborted ? " before the RPC deadline" : "";
      // A RuntimeError keeps this message in the answer instead of the bare deadline status.
      throw new RuntimeError(
        "DEADLINE_EXCEEDED",
        `container ${container} did not become ready${within}: GET ${url} last answered ${
          describe(last)
        } (${attempts - 1} attempts${before}); check the container's logs`,
      );
    }
    const outcome = await prober(
      target,
      AbortSignal.any([signal, AbortSignal.timeout(requestTimeoutMs)]),
    );
    if ("status" in outcome && outcome.status >= 200 && outcome.status <= 299) return { attempts };
    // A probe cut short by the limit says nothing about the container: keep the last answer.
    if (!signal.aborted || !last) last = outcome;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, PROBE_INTERVAL_MS);
      signal.addEventListener("abort", done, { once: true });
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
    });
  }
}
