/**
 * Run as its own process by client_test.ts: drives ChClient through successes, CH errors,
 * fd passing, timeouts, cancels and connect failures against a CH double, and prints as JSON
 * the fds this process gained meanwhile, ignoring socketpairs the runtime creates for itself
 * (both ends in this process, e.g. its signal driver): `{added, calls, failures}`.
 */
import { ChClient } from "../../lib/ch/client.ts";
import { closeFd, O_RDWR, openFd } from "../../lib/ffi/libc.ts";
import { nullLogger } from "../../lib/log/logger.ts";
import { VmmProcess } from "../../lib/ch/vmm_process.ts";
import { makeAssets } from "./harness.ts";

/** This process's fds as `fd:target`. */
function fdList(): string[] {
  return [...Deno.readDirSync("/proc/self/fd")].map((e) => {
    try {
      return `${e.name}:${Deno.readLinkSync(`/proc/self/fd/${e.name}`)}`;
    } catch {
      return `${e.name}:?`;
    }
  });
}

/** Unix socket inodes whose peer is also held by this process (from `ss -xp`). */
async function inProcessPairs(): Promise<Set<string>> {
  const out = await new Deno.Command("ss", { args: ["-xapH"], stdout: "piped" }).output();
  const mine = new Set<string>();
  const peers = new Map<string, string>();
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 8) continue;
    const [local, peer] = [cols[5], cols[7]];
    if (line.includes(`pid=${Deno.pid},`)) mine.add(local);
    peers.set(local, peer);
  }
  return new Set([...mine].filter((inode) => mine.has(peers.get(inode) ?? "")));
}

const binary = Deno.args[0];
const { dir, config } = await makeAssets();
const vmm = await VmmProcess.launch({ binary, apiSocket: `${dir}/api.sock`, logger: nullLogger });
const client = vmm.client;
const failures: string[] = [];
let calls = 0;
/** Runs a call that must fail (or succeed when `ok`), counting it. */
async function call(what: string, fn: () => Promise<unknown>, ok = false) {
  calls++;
  try {
    await fn();
    if (!ok) failures.push(`${what}: succeeded`);
  } catch (e) {
    if (ok) failures.push(`${what}: ${(e as Error).message}`);
  }
}

// Warm up everything lazily loaded (libc, timers) before listing.
await client.ping();
const before = fdList();
let after: string[] = [];
try {
  const tap = openFd("/dev/null", O_RDWR);
  await call("info before create", () => client.info());
  await call("create", () => client.create(config), true);
  await call("create again", () => client.create(config));
  await call("add-net", () => client.addNet({ mac: "02:00:00:00:00:01" }, [tap]), true);
  await call("add-net bad queues", () => client.raw("PUT", "vm.add-net", { num_queues: 6 }, [tap]));
  closeFd(tap);
  await call("boot", () => client.boot(), true);
  for (let i = 0; i < 5; i++) await call("ping", () => client.ping(), true);
  await call("pause", () => client.pause(), true);
  await call("pause again", () => client.pause(), true);
  await call("snapshot to nowhere", () => client.snapshot("/nonexistent"));
  await call("resume", () => client.resume(), true);
  const aborted = new AbortController();
  aborted.abort();
  await call("pre-aborted", () => client.ping({ signal: aborted.signal }));
  Deno.kill(vmm.pid, "SIGSTOP");
  for (let i = 0; i < 3; i++) await call("timeout", () => client.info({ timeoutMs: 20 }));
  const ctl = new AbortController();
  const pending = client.ping({ signal: ctl.signal });
  ctl.abort();
  await call("cancelled", () => pending);
  Deno.kill(vmm.pid, "SIGCONT");
  await call("ping after stop", () => client.ping(), true);
  await call("connect failure", () => new ChClient(`${dir}/none.sock`).ping());
  await call("shutdown", () => client.shutdown(), true);
  // Listed while the VMM still runs: its pipes are in `before` too.
  after = fdList();
} finally {
  await vmm.kill();
}
const runtimePairs = await inProcessPairs().catch(() => new Set<string>());
const added = after.filter((f) => {
  if (before.includes(f)) return false;
  const inode = /^\d+:socket:\[(\d+)\]$/.exec(f)?.[1];
  return !(inode && runtimePairs.has(inode));
});
await Deno.remove(dir, { recursive: true });
console.log(JSON.stringify({ added, calls, failures }));
