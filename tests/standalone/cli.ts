/**
 * Helpers of the standalone CLI tests: bin/ateom-microvm run as a user runs it, with a temp state
 * dir, no config file and extra env; a minimal OCI bundle; and checks that an actor left nothing
 * behind on the host (netns, veth, nft table, processes).
 *
 * @module
 */
import { join } from "node:path";
import { assertEquals } from "../assert.ts";
import { listDir, readProcText, readStat } from "../../lib/ffi/procfs.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const BIN = join(ROOT, "bin/ateom-microvm");
export const DENO = Deno.execPath();

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A state dir and the env every CLI call of one test gets. */
export interface Cli {
  stateDir: string;
  env: Record<string, string>;
  run(...args: string[]): Promise<CliResult>;
  /** Runs and asserts exit 0; returns stdout. */
  ok(...args: string[]): Promise<string>;
}

export async function withCli(
  env: Record<string, string>,
  fn: (cli: Cli) => Promise<void>,
): Promise<void> {
  const stateDir = await Deno.makeTempDir({ prefix: `standalone-cli-${Deno.pid}-` });
  const fullEnv = {
    ATEOM_MICROVM_STATE_DIR: stateDir,
    ATEOM_MICROVM_CONFIG: join(stateDir, "no-config.toml"),
    ...env,
  };
  const run = async (...args: string[]): Promise<CliResult> => {
    const out = await new Deno.Command(BIN, {
      args,
      env: fullEnv,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  const ok = async (...args: string[]) => {
    const r = await run(...args);
    assertEquals(r.code, 0, `ateom-microvm ${args.join(" ")}: ${r.stderr} ${r.stdout}`);
    return r.stdout;
  };
  const cli = { stateDir, env: fullEnv, run, ok };
  try {
    await fn(cli);
  } finally {
    // Whatever the test left: remove every actor it knows (supervisors, VMMs, netns).
    const ps = await run("ps", "--json").catch(() => undefined);
    const names = ps?.code === 0 ? (JSON.parse(ps.stdout) as { name: string }[]) : [];
    if (names.length) await run("rm", "--force", ...names.map((n) => n.name));
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
}

/** Starts `logs -f NAME` (stdout piped; stderr piped unless `quiet`). */
export function followLogs(cli: Cli, name: string, quiet = false): Deno.ChildProcess {
  return new Deno.Command(BIN, {
    args: ["logs", "-f", name],
    env: cli.env,
    stdin: "null",
    stdout: "piped",
    stderr: quiet ? "null" : "piped",
  }).spawn();
}

/**
 * Resolves once `logs NAME` shows `line` (followed with `logs -f`, no polling) and returns the
 * whole `logs NAME` text at that point; rejects when the line has not appeared within
 * `timeoutMs` or the follower ended without it.
 */
export async function waitForLog(
  cli: Cli,
  name: string,
  line: string,
  timeoutMs = 15_000,
): Promise<string> {
  const follower = followLogs(cli, name, true);
  const timer = setTimeout(() => follower.kill("SIGKILL"), timeoutMs);
  let seen = "";
  let found = false;
  try {
    const reader = follower.stdout.pipeThrough(new TextDecoderStream()).getReader();
    while (!found) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
      found = seen.split("\n").slice(0, -1).includes(line);
    }
    await reader.cancel();
  } finally {
    clearTimeout(timer);
    try {
      follower.kill("SIGTERM");
    } catch { /* already exited */ }
    await follower.status;
  }
  if (!found) {
    throw new Error(`${name} never logged ${JSON.stringify(line)}; logs:\n${seen}`);
  }
  return await cli.ok("logs", name);
}

/** Writes a minimal OCI bundle (config.json running `args`, rootfs with /bin/<args[0]>). */
export async function writeBundle(dir: string, args: string[]): Promise<string> {
  await Deno.mkdir(join(dir, "rootfs/bin"), { recursive: true });
  await Deno.mkdir(join(dir, "rootfs/etc"), { recursive: true });
  await Deno.writeTextFile(join(dir, "rootfs/bin", args[0]), "#!/bin/sh\n", { mode: 0o755 });
  await Deno.writeTextFile(join(dir, "rootfs/etc/os-release"), "NAME=test\n");
  const spec = {
    ociVersion: "1.0.2",
    process: { args, env: ["PATH=/bin"], cwd: "/", user: { uid: 0, gid: 0 } },
    root: { path: "rootfs" },
    hostname: "standalone",
    mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
    linux: { namespaces: [{ type: "pid" }, { type: "mount" }] },
  };
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(spec, null, 2));
  return dir;
}

/**
 * Writes stand-in guest kernel and image files into `dir` and returns the `run`/`restore` flags
 * naming them and `cloudHypervisor` (default: a stub script written there too).
 */
export async function writeAssets(dir: string, cloudHypervisor?: string): Promise<string[]> {
  await Deno.writeTextFile(join(dir, "vmlinux"), "kernel\n");
  await Deno.writeTextFile(join(dir, "kata.img"), "guest image\n");
  if (!cloudHypervisor) {
    cloudHypervisor = join(dir, "cloud-hypervisor");
    await Deno.writeTextFile(cloudHypervisor, "#!/bin/sh\n", { mode: 0o755 });
  }
  return [
    "--kernel",
    join(dir, "vmlinux"),
    "--image",
    join(dir, "kata.img"),
    "--cloud-hypervisor",
    cloudHypervisor,
  ];
}

/** Names under /run/netns. */
export function netnsNames(): string[] {
  try {
    return [...Deno.readDirSync("/run/netns")].map((e) => e.name);
  } catch {
    return [];
  }
}

/** Host links (from /sys/class/net). */
export function hostLinks(): string[] {
  return [...Deno.readDirSync("/sys/class/net")].map((e) => e.name);
}

/** Pids of live processes whose command line mentions `needle`. */
export async function processesMentioning(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of listDir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === Deno.pid) continue;
    try {
      const cmd = await readProcText(`/proc/${name}/cmdline`);
      const stat = await readStat(Number(name));
      if (cmd?.includes(needle) && stat && stat.state !== "Z") pids.push(Number(name));
    } catch { /* gone */ }
  }
  return pids;
}

/** Asserts nothing of actor `name` is left on the host (pod netns, interior netns, veth). */
export function assertNoHostLeftovers(name: string): void {
  const ns = netnsNames().filter((n) => n === `ateom-pod:${name}` || n === `ateom:${name}`);
  assertEquals(ns, [], "netns left");
}
