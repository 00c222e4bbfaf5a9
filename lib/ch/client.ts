/**
 * cloud-hypervisor REST client over the VMM's unix api-socket.
 *
 * Contract:
 * - One fresh connection per request: CH's micro_http server closes idle connections, so a
 *   reused one can hang. The request is written whole and the socket is never half-closed (CH
 *   drops a half-closed request unanswered).
 * - File descriptors (tap fds for vm.add-net and vm.restore) ride as SCM_RIGHTS on the same
 *   sendmsg as the request bytes; the caller keeps ownership of them.
 * - Every call has a deadline (client default, overridable per call) and an optional
 *   AbortSignal; on either the connection is shut down, which wakes the pending read, and the
 *   socket is closed: nothing leaks.
 * - Non-2xx answers throw {@link ChApiError} with method, path, status and CH's error text;
 *   transport failures throw {@link ChTransportError}.
 * - CH serves one request at a time: a long vm.snapshot stalls every other call, so callers
 *   should size deadlines for that.
 *
 * @module
 */
import { UnixFdSocket } from "../ffi/fdpass.ts";
import {
  encodeRequest,
  errorMessages,
  HttpParseError,
  type HttpResponse,
  parseResponse,
} from "./http.ts";
import type {
  NetConfig,
  RestoreConfig,
  VmConfig,
  VmInfo,
  VmmPingResponse,
  VmSnapshotConfig,
  VmState,
} from "./types.ts";

const API_ROOT = "/api/v1";
const decoder = new TextDecoder();

/** Per-call options. */
export interface CallOptions {
  /** Cancels the call; the error then says it was cancelled. */
  signal?: AbortSignal;
  /** Deadline for this call in milliseconds (default: the client's). */
  timeoutMs?: number;
}

/** CH answered with a non-2xx status. */
export class ChApiError extends Error {
  /** CH's error text (its JSON array of strings joined with ": "). */
  readonly body: string;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    /** CH's error chain, outermost first. */
    readonly messages: readonly string[],
  ) {
    const body = messages.join(": ");
    super(`cloud-hypervisor ${method} ${path} answered ${status}: ${body || "(no body)"}`);
    this.name = "ChApiError";
    this.body = body;
  }
}

/**
 * Whether `e` is CH (v53+) refusing vm.snapshot because an OnDemand restore is still filling
 * memory in the background: retry the snapshot later, under the caller's deadline.
 */
export function isRestoreInProgress(e: unknown): boolean {
  return e instanceof ChApiError && e.path.endsWith("/vm.snapshot") &&
    e.messages.some((m) => m.includes("on-demand memory restore is still in progress"));
}

/** Why a call failed before CH answered. */
export type TransportFailure = "connect" | "timeout" | "aborted" | "closed" | "protocol";

/** The call did not get an answer: no VMM listening, deadline, cancel, or a broken reply. */
export class ChTransportError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly reason: TransportFailure,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`cloud-hypervisor ${method} ${path}: ${detail}`, options);
    this.name = "ChTransportError";
  }
}

/** The major version in a CH version string: `54.0.0`, `v52.0`, `v53.1-4-gdeadbeef` → 54/52/53. */
export function parseMajorVersion(version: string): number {
  const m = /^v?(\d+)\./.exec(version.trim());
  if (!m) {
    throw new Error(
      `cannot read a major version from cloud-hypervisor version ${JSON.stringify(version)}`,
    );
  }
  return Number(m[1]);
}

/** vmm.ping with the major version parsed. */
export interface PingResult extends VmmPingResponse {
  major: number;
}

function concat(a: Uint8Array<ArrayBuffer>, b: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Connections one client keeps open at once. CH accepts at most 10 and answers one request at a
 * time, so more buys nothing; the margin leaves room for other clients (ch-remote, a second
 * worker instance).
 */
export const MAX_CONCURRENT_REQUESTS = 4;

/** A client for one VMM's api-socket. Holds no connection between calls. */
export class ChClient {
  readonly socketPath: string;
  readonly timeoutMs: number;
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(socketPath: string, options: { timeoutMs?: number } = {}) {
    this.socketPath = socketPath;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** A free connection slot now (the function gives it back), or undefined. */
  #take(): (() => void) | undefined {
    if (this.#active >= MAX_CONCURRENT_REQUESTS) return undefined;
    this.#active++;
    return () => {
      this.#active--;
      this.#waiting.shift()?.();
    };
  }

  /** Waits for a connection slot; the returned function gives it back. */
  async #slot(signal?: AbortSignal): Promise<() => void> {
    for (;;) {
      const release = this.#take();
      if (release) return release;
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener("abort", wake);
          const i = this.#waiting.indexOf(wake);
          if (i >= 0) this.#waiting.splice(i, 1);
          resolve();
        };
        this.#waiting.push(wake);
        signal?.addEventListener("abort", wake, { once: true });
      });
      // A cancelled wait takes no slot; the exchange then reports the cancel.
      if (signal?.aborted) return () => {};
    }
  }

  /**
   * One request/response exchange on a fresh connection. Returns undefined only when
   * `eofIsAnswer` and the server closed without answering.
   */
  async #exchange(
    method: "GET" | "PUT",
    endpoint: string,
    body: unknown,
    fds: readonly number[],
    options: CallOptions,
    eofIsAnswer = false,
  ): Promise<HttpResponse | undefined> {
    // The deadline covers the wait for a connection slot too.
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const started = Date.now();
    // Taken synchronously when free, so the request goes out before this call first yields.
    const release = this.#take() ?? await this.#slot(options.signal);
    try {
      const remaining = Math.max(1, timeoutMs - (Date.now() - started));
      return await this.#exchangeNow(
        method,
        endpoint,
        body,
        fds,
        { signal: options.signal, timeoutMs: remaining },
        eofIsAnswer,
        timeoutMs,
      );
    } finally {
      release();
    }
  }

  async #exchangeNow(
    method: "GET" | "PUT",
    endpoint: string,
    body: unknown,
    fds: readonly number[],
    options: CallOptions,
    eofIsAnswer: boolean,
    /** The call's whole deadline, for the error message. */
    callTimeoutMs: number,
  ): Promise<HttpResponse | undefined> {
    const path = `${API_ROOT}/${endpoint}`;
    const fail = (reason: TransportFailure, detail: string, cause?: unknown) =>
      new ChTransportError(method, path, reason, detail, cause ? { cause } : undefined);
    if (options.signal?.aborted) throw fail("aborted", "cancelled before sending");
    const request = encodeRequest(
      method,
      path,
      body === undefined ? undefined : JSON.stringify(body),
    );
    let sock: UnixFdSocket;
    try {
      sock = UnixFdSocket.connect(this.socketPath);
    } catch (e) {
      throw fail("connect", `cannot connect to ${this.socketPath}: ${(e as Error).message}`, e);
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let stopped: ChTransportError | undefined;
    const stop = (err: ChTransportError) => {
      stopped ??= err;
      sock.abort();
    };
    const onAbort = () => stop(fail("aborted", "cancelled", options.signal?.reason));
    const timer = setTimeout(
      () => stop(fail("timeout", `no answer within ${callTimeoutMs} ms (is the VMM stuck?)`)),
      timeoutMs,
    );
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      try {
        sock.send(request, fds);
      } catch (e) {
        throw fail("closed", `sending the request failed: ${(e as Error).message}`, e);
      }
      let buf = new Uint8Array(0);
      for (;;) {
        const chunk = await sock.read();
        if (stopped) throw stopped;
        const eof = chunk.length === 0;
        buf = concat(buf, chunk);
        let res: HttpResponse | undefined;
        try {
          res = parseResponse(buf, eof);
        } catch (e) {
          if (e instanceof HttpParseError) throw fail("protocol", e.message, e);
          throw e;
        }
        if (res) return res;
        if (eof) {
          if (eofIsAnswer && buf.length === 0) return undefined;
          throw fail("closed", "the VMM closed the connection without answering");
        }
      }
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      sock.close();
    }
  }

  /** A call that must answer 2xx; returns the body text (empty for 204). */
  async #call(
    method: "GET" | "PUT",
    endpoint: string,
    body: unknown,
    options: CallOptions,
    fds: readonly number[] = [],
  ): Promise<string> {
    const res = (await this.#exchange(method, endpoint, body, fds, options))!;
    const text = decoder.decode(res.body);
    if (res.status < 200 || res.status > 299) {
      throw new ChApiError(method, `${API_ROOT}/${endpoint}`, res.status, errorMessages(res.body));
    }
    return text;
  }

  async #json<T>(method: "GET" | "PUT", endpoint: string, options: CallOptions): Promise<T> {
    const text = await this.#call(method, endpoint, undefined, options);
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new ChTransportError(
        method,
        `${API_ROOT}/${endpoint}`,
        "protocol",
        `answer is not JSON: ${JSON.stringify(text.slice(0, 200))}`,
        { cause: e },
      );
    }
  }

  /** vmm.ping: the VMM's version (with `major` parsed, which later steps adapt to). */
  async ping(options: CallOptions = {}): Promise<PingResult> {
    const pong = await this.#json<VmmPingResponse>("GET", "vmm.ping", options);
    if (typeof pong.version !== "string") {
      throw new ChTransportError(
        "GET",
        `${API_ROOT}/vmm.ping`,
        "protocol",
        "answer has no version",
      );
    }
    return { ...pong, major: parseMajorVersion(pong.version || pong.build_version || "") };
  }

  /** vm.create: stores the config; nothing runs until {@link boot}. */
  async create(config: VmConfig, options: CallOptions = {}): Promise<void> {
    const size = config.memory.size;
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new Error(
        `vm.create: memory.size ${size} is not a positive byte count (beware \`<<\` overflow past 2 GiB)`,
      );
    }
    await this.#call("PUT", "vm.create", config, options);
  }

  /**
   * vm.add-net with tap fds (one per queue pair) sent as SCM_RIGHTS. `num_queues` defaults to
   * 2 × fds and must equal it. Before boot CH answers 204 (undefined here); after boot it
   * hot-plugs and answers the PCI device info.
   */
  async addNet(
    net: NetConfig,
    fds: readonly number[],
    options: CallOptions = {},
  ): Promise<{ id: string; bdf: string } | undefined> {
    if (fds.length === 0) throw new Error("vm.add-net: at least one tap fd is needed");
    const numQueues = net.num_queues ?? 2 * fds.length;
    if (numQueues !== 2 * fds.length) {
      throw new Error(
        `vm.add-net: num_queues ${numQueues} must be 2 × the ${fds.length} tap fds passed`,
      );
    }
    const text = await this.#call(
      "PUT",
      "vm.add-net",
      { ...net, num_queues: numQueues },
      options,
      fds,
    );
    return text ? JSON.parse(text) : undefined;
  }

  /** vm.boot (no body: CH answers 400 to a body here). */
  async boot(options: CallOptions = {}): Promise<void> {
    await this.#call("PUT", "vm.boot", undefined, options);
  }

  /** vm.info. */
  info(options: CallOptions = {}): Promise<VmInfo> {
    return this.#json<VmInfo>("GET", "vm.info", options);
  }

  /** The VM's state from vm.info. */
  async state(options: CallOptions = {}): Promise<VmState> {
    return (await this.info(options)).state;
  }

  /**
   * vm.pause, idempotent: a VM already Paused is left as is (CH itself refuses Paused → Paused
   * as an invalid transition).
   */
  async pause(options: CallOptions = {}): Promise<void> {
    if (await this.state(options) === "Paused") return;
    try {
      await this.#call("PUT", "vm.pause", undefined, options);
    } catch (e) {
      // Paused concurrently by someone else: the goal is reached.
      if (e instanceof ChApiError && await this.state(options).catch(() => "") === "Paused") return;
      throw e;
    }
  }

  /** vm.resume. */
  async resume(options: CallOptions = {}): Promise<void> {
    await this.#call("PUT", "vm.resume", undefined, options);
  }

  /**
   * vm.snapshot into `dir` (absolute, existing; CH creates its files exclusively, so the
   * directory must not hold a previous snapshot). The VM must be Paused.
   */
  async snapshot(dir: string, options: CallOptions = {}): Promise<void> {
    if (!dir.startsWith("/")) throw new Error(`vm.snapshot: destination ${dir} must be absolute`);
    const body: VmSnapshotConfig = { destination_url: `file://${dir}` };
    await this.#call("PUT", "vm.snapshot", body, options);
  }

  /**
   * vm.restore on a fresh VMM (no vm.create). `fds` are the tap fds of every `net_fds` entry in
   * order; their number must equal the sum of `num_fds` (checked before sending, as CH refuses
   * a mismatch with a bare 400).
   */
  async restore(
    config: RestoreConfig,
    fds: readonly number[],
    options: CallOptions = {},
  ): Promise<void> {
    const expected = (config.net_fds ?? []).reduce((n, c) => n + c.num_fds, 0);
    if (expected !== fds.length) {
      throw new Error(
        `vm.restore: net_fds announce ${expected} fds but ${fds.length} were given; pass one tap fd per queue pair of each net device`,
      );
    }
    const mode = config.memory_restore_mode;
    if (mode !== undefined && mode !== "Copy" && mode !== "OnDemand") {
      throw new Error(
        `vm.restore: memory_restore_mode must be "Copy" or "OnDemand", not ${JSON.stringify(mode)}`,
      );
    }
    if (!config.source_url.startsWith("file:///")) {
      throw new Error(
        `vm.restore: source_url ${config.source_url} must be file:// with an absolute path`,
      );
    }
    await this.#call("PUT", "vm.restore", config, options, fds);
  }

  /** vm.shutdown: stops the guest; the VMM process stays. */
  async shutdown(options: CallOptions = {}): Promise<void> {
    await this.#call("PUT", "vm.shutdown", undefined, options);
  }

  /**
   * vmm.shutdown: the VMM exits. It may close the connection before answering; that counts as
   * success.
   */
  async shutdownVmm(options: CallOptions = {}): Promise<void> {
    const path = `${API_ROOT}/vmm.shutdown`;
    const res = await this.#exchange("PUT", "vmm.shutdown", undefined, [], options, true);
    if (res && (res.status < 200 || res.status > 299)) {
      throw new ChApiError("PUT", path, res.status, errorMessages(res.body));
    }
  }

  /** A raw call for endpoints not wrapped here; non-2xx throws {@link ChApiError}. */
  raw(
    method: "GET" | "PUT",
    endpoint: string,
    body?: unknown,
    fds: readonly number[] = [],
    options: CallOptions = {},
  ): Promise<string> {
    return this.#call(method, endpoint, body, options, fds);
  }
}
