/**
 * The per-actor supervisor: a `serve` worker process (pod UID = the actor's NAME, base path = the
 * state dir) that owns the actor's VMM and writes the worker and actor log lines to
 * `standalone/<NAME>/worker.log`. It is started in a new session with stdin closed and its output
 * on the log file, so it outlives the CLI and a terminal's signals; it stops on SIGTERM (the worker
 * tears its actor down and removes its socket).
 *
 * The worker is this same program: the compiled binary runs itself, otherwise the Deno running
 * main.ts runs it again as the launcher does (`--allow-all`: FFI grants everything anyway). `$ATEOM_MICROVM_WORKER` (a JSON array of
 * argv words placed before `serve ...`) replaces that, for tests and wrappers (e.g. `ip netns exec`).
 *
 * @module
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { basename, dirname } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { isAlive } from "./proc.ts";
import { readStat } from "../ffi/procfs.ts";

export const WORKER_ENV = "ATEOM_MICROVM_WORKER";

const PERMS = ["--allow-all"];

/** The argv that runs this program (before its subcommand). */
export function selfArgv(env = Deno.env.get(WORKER_ENV)): string[] {
  if (env) {
    let argv: unknown;
    try {
      argv = JSON.parse(env);
    } catch {
      argv = undefined;
    }
    if (!Array.isArray(argv) || argv.length === 0 || argv.some((a) => typeof a !== "string")) {
      throw new Error(`$${WORKER_ENV} must be a JSON array of strings, got ${env}`);
    }
    return argv as string[];
  }
  const exec = Deno.execPath();
  if (!basename(exec).startsWith("deno")) return [exec];
  const main = fromFileUrl(new URL("../../main.ts", import.meta.url));
  const config = fromFileUrl(new URL("../../deno.json", import.meta.url));
  return [exec, "run", "--quiet", "--no-prompt", "--config", config, ...PERMS, main];
}

export interface StartOptions {
  name: string;
  stateDir: string;
  logFile: string;
  socket: string;
  logLevel?: string;
  /** Run the worker in this named netns (through `nsenter --net`). */
  netns?: string;
  /** How long to wait for the socket (default 30 s). */
  timeoutMs?: number;
}

/** A started supervisor. */
export interface Supervisor {
  pid: number;
  startTicks: number;
}

/** The last `n` lines of `path` (for errors). */
export async function tail(path: string, n = 5): Promise<string> {
  try {
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
    return lines.slice(-n).join(" | ");
  } catch {
    return "";
  }
}

/** Whether something accepts connections on the unix socket `path`. */
export async function socketAnswers(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the worker for `name` detached and resolves once its socket accepts connections.
 * Throws (after stopping it) when it exits first or the socket does not come up in time.
 */
export async function startSupervisor(options: StartOptions): Promise<Supervisor> {
  const argv = [
    ...(options.netns ? ["nsenter", `--net=/run/netns/${options.netns}`, "--"] : []),
    ...selfArgv(),
    "serve",
    "--pod-uid",
    options.name,
    "--base-path",
    options.stateDir,
    "--log-level",
    options.logLevel ?? "info",
  ];
  await Deno.mkdir(dirname(options.logFile), { recursive: true, mode: 0o700 });
  const fd = openSync(options.logFile, "a", 0o600);
  let pid: number | undefined;
  const exited = Promise.withResolvers<string>();
  try {
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ["ignore", fd, fd],
      detached: true,
    });
    child.on(
      "exit",
      (code, signal) => exited.resolve(signal ? `signal ${signal}` : `code ${code}`),
    );
    child.on("error", (e) => exited.resolve(e.message));
    pid = child.pid;
    child.unref();
  } finally {
    closeSync(fd);
  }
  if (!pid) {
    throw new Error(`starting the supervisor ${argv[0]} failed: ${await exited.promise}`);
  }
  const stat = await readStat(pid);
  const supervisor = { pid, startTicks: stat?.startTicks ?? 0 };
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let exitReason: string | undefined;
  exited.promise.then((r) => exitReason = r);
  while (!(await socketAnswers(options.socket))) {
    if (exitReason !== undefined || !(await isAlive(supervisor.pid, supervisor.startTicks))) {
      // The exit event follows the reaping; give it a moment to say how the worker ended.
      const why = exitReason ?? await Promise.race([
        exited.promise,
        new Promise<string>((r) => setTimeout(() => r("it exited"), 2000)),
      ]);
      throw new Error(
        `the supervisor (worker) of ${options.name} exited (${why}) before serving: ` +
          `${await tail(options.logFile)}; see ${options.logFile}`,
      );
    }
    if (Date.now() > deadline) {
      await stopSupervisor(supervisor, 5_000);
      throw new Error(
        `the supervisor of ${options.name} did not open ${options.socket} within ` +
          `${(options.timeoutMs ?? 30_000) / 1000} s; see ${options.logFile}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return supervisor;
}

/**
 * Stops a supervisor: SIGTERM (the worker shuts down gracefully), then SIGKILL after `graceMs`.
 * Resolves once it is gone; a supervisor already gone is not an error.
 */
export async function stopSupervisor(s: Supervisor, graceMs = 15_000): Promise<void> {
  if (!(await isAlive(s.pid, s.startTicks))) return;
  const kill = (sig: Deno.Signal) => {
    try {
      Deno.kill(s.pid, sig);
    } catch { /* gone */ }
  };
  kill("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (await isAlive(s.pid, s.startTicks)) {
    if (Date.now() > deadline) {
      kill("SIGKILL");
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
