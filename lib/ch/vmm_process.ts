/**
 * Launches and supervises a cloud-hypervisor process: `<binary> --api-socket <path>`, its
 * stdout/stderr forwarded line by line into a Logger, ready once vmm.ping answers.
 *
 * Contract: {@link VmmProcess.launch} either returns a VMM that answered vmm.ping (with its
 * version) or kills and reaps what it started and throws. The AbortSignal given to launch only
 * covers the start: once launched, the VMM outlives the RPC that started it, until
 * {@link VmmProcess.kill} or its own exit ({@link VmmProcess.exited}).
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { parseStat, readStat } from "../ffi/procfs.ts";
import { ChClient, type PingResult } from "./client.ts";

export interface LaunchOptions {
  /** The cloud-hypervisor executable. */
  binary: string;
  /** Where the VMM binds its API; must not contain `,` or `=` (CH parses an option list). */
  apiSocket: string;
  logger: Logger;
  /** How long the VMM has to answer vmm.ping (default 10 s). */
  readyTimeoutMs?: number;
  /** Cancels the start (the child is then killed and reaped). Ignored once launched. */
  signal?: AbortSignal;
  /** Extra environment for the child (on top of ours). */
  env?: Record<string, string>;
  /** Extra arguments after `--api-socket <path>`. */
  args?: string[];
  /** Deadline of each API call made through {@link VmmProcess.client} (default 30 s). */
  callTimeoutMs?: number;
}

/** Validates an api-socket path for CH's `--api-socket` option syntax. */
export function checkApiSocketPath(path: string): void {
  if (path.includes(",") || path.includes("=")) {
    throw new Error(
      `cloud-hypervisor api socket path ${path} contains ',' or '=', which CH's option parser splits on: choose another directory`,
    );
  }
  if (!path.startsWith("/")) {
    throw new Error(`cloud-hypervisor api socket path ${path} must be absolute`);
  }
  if (new TextEncoder().encode(path).length > 107) {
    throw new Error(
      `cloud-hypervisor api socket path ${path} is longer than a unix socket allows (107 bytes)`,
    );
  }
}

/** Forwards a byte stream into `emit`, one call per line (a last partial line included). */
export async function forwardLines(
  stream: ReadableStream<Uint8Array>,
  emit: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      emit(pending.slice(0, nl).replace(/\r$/, ""));
      pending = pending.slice(nl + 1);
    }
  }
  pending += decoder.decode();
  if (pending) emit(pending);
}

/** A running VMM process. */
export class VmmProcess {
  readonly #child: Deno.ChildProcess;
  readonly #logs: Promise<unknown>;
  /** Resolves when the process has exited and been reaped (and its output forwarded). */
  readonly exited: Promise<Deno.CommandStatus>;
  #exitStatus: Deno.CommandStatus | undefined;

  private constructor(
    child: Deno.ChildProcess,
    logs: Promise<unknown>,
    readonly apiSocket: string,
    readonly client: ChClient,
    readonly binary: string,
  ) {
    this.#child = child;
    this.#logs = logs;
    this.exited = Promise.all([child.status, logs.catch(() => {})]).then(([status]) => {
      this.#exitStatus = status;
      return status;
    });
  }

  /** The child's pid. */
  get pid(): number {
    return this.#child.pid;
  }

  /** pid + start time, to persist so a restarted worker can find this VMM again. */
  get identity(): VmmIdentity {
    return this.#identity;
  }
  #identity!: VmmIdentity;

  /** The exit status once reaped, else undefined. */
  get exitStatus(): Deno.CommandStatus | undefined {
    return this.#exitStatus;
  }

  /** The version the VMM reported when it became ready. */
  version!: PingResult;

  /** Starts the VMM and waits until vmm.ping answers; see the module contract. */
  static async launch(options: LaunchOptions): Promise<VmmProcess> {
    checkApiSocketPath(options.apiSocket);
    options.signal?.throwIfAborted();
    const log = options.logger.with({ component: "cloud-hypervisor" });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(options.binary, {
        args: ["--api-socket", options.apiSocket, ...(options.args ?? [])],
        env: options.env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      throw new Error(`cannot start cloud-hypervisor ${options.binary}: ${(e as Error).message}`);
    }
    const childLog = log.with({ pid: child.pid });
    childLog.info("cloud-hypervisor started", {
      binary: options.binary,
      api_socket: options.apiSocket,
    });
    const logs = Promise.all([
      forwardLines(child.stdout, (line) => childLog.info(line, { stream: "stdout" })),
      forwardLines(child.stderr, (line) => childLog.info(line, { stream: "stderr" })),
    ]);
    const client = new ChClient(options.apiSocket, { timeoutMs: options.callTimeoutMs });
    const vmm = new VmmProcess(child, logs, options.apiSocket, client, options.binary);
    vmm.#identity = { pid: child.pid, startTime: (await procStat(child.pid))?.startTime ?? "" };
    try {
      vmm.version = await vmm.#waitReady(options.readyTimeoutMs ?? 10_000, options.signal);
    } catch (e) {
      await vmm.kill();
      throw e;
    }
    childLog.info("cloud-hypervisor ready", {
      version: vmm.version.version,
      api_socket: options.apiSocket,
    });
    return vmm;
  }

  async #waitReady(timeoutMs: number, signal?: AbortSignal): Promise<PingResult> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    let wake: (() => void) | undefined;
    this.exited.then(() => {
      exited = true;
      wake?.();
    });
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort, { once: true });
    let lastError: unknown;
    try {
      for (;;) {
        if (signal?.aborted) {
          throw new Error(`starting cloud-hypervisor cancelled before its API answered`, {
            cause: signal.reason,
          });
        }
        if (exited) {
          const s = await this.exited;
          throw new Error(
            `cloud-hypervisor ${this.binary} exited (${
              describeStatus(s)
            }) before its API answered on ${this.apiSocket}; see its log lines`,
          );
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          throw new Error(
            `cloud-hypervisor did not answer vmm.ping on ${this.apiSocket} within ${timeoutMs} ms (last error: ${
              (lastError as Error | undefined)?.message ?? "none"
            })`,
          );
        }
        try {
          return await this.client.ping({ signal, timeoutMs: Math.min(remaining, 2_000) });
        } catch (e) {
          lastError = e;
        }
        // Poll again shortly; an exit or a cancel cuts the pause short.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(25, Math.max(0, deadline - Date.now())));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** SIGKILL (if still running) and reap; returns the exit status. Safe to call repeatedly. */
  async kill(): Promise<Deno.CommandStatus> {
    if (this.#exitStatus === undefined) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }
    await this.#logs.catch(() => {});
    return await this.exited;
  }
}

/**
 * Identifies a VMM process across worker restarts: a pid alone can be reused, the pid plus the
 * process start time (field 22 of /proc/<pid>/stat, clock ticks since boot) cannot.
 */
export interface VmmIdentity {
  pid: number;
  startTime: string;
}

/** Field 22 (starttime) of a /proc/<pid>/stat text; the comm field may hold spaces or ')'. */
export function parseStartTime(statText: string): string {
  return String(parseStat(statText).startTicks);
}

/** The state letter and start time of a live process, or undefined when there is none. */
async function procStat(pid: number): Promise<{ state: string; startTime: string } | undefined> {
  const stat = await readStat(pid);
  return stat && { state: stat.state, startTime: String(stat.startTicks) };
}

/** The identity of a running process (for persisting a VMM's pid with its start time). */
export async function identityOf(pid: number): Promise<VmmIdentity> {
  const stat = await procStat(pid);
  if (!stat) throw new Error(`process ${pid} does not exist`);
  return { pid, startTime: stat.startTime };
}

/**
 * Kills a VMM a previous worker instance started (not our child, so it cannot be reaped here):
 * SIGKILL only when the pid still belongs to the same process, then waits until it is gone (or
 * a zombie left to its parent). Returns "gone" when no such process exists any more, "reused"
 * when the pid now names another process (left alone), "killed" otherwise.
 */
export async function killByIdentity(
  id: VmmIdentity,
  timeoutMs = 10_000,
): Promise<"killed" | "gone" | "reused"> {
  const stat = await procStat(id.pid);
  if (!stat || stat.state === "Z") return "gone";
  if (stat.startTime !== id.startTime) return "reused";
  try {
    Deno.kill(id.pid, "SIGKILL");
  } catch {
    return "gone";
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await procStat(id.pid);
    if (!now || now.state === "Z" || now.startTime !== id.startTime) return "killed";
    if (Date.now() > deadline) {
      throw new Error(`process ${id.pid} did not die within ${timeoutMs} ms of SIGKILL`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function describeStatus(s: Deno.CommandStatus): string {
  return s.signal ? `killed by ${s.signal}` : `exit code ${s.code}`;
}
