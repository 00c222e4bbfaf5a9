/**
 * Run as its own process by client_test.ts: drives ChClient through successes, CH errors,
 * fd passing, timeouts, cancels and connect failures against a CH double, and prints the
 * process's open fd count before and after as JSON (`{before, after, calls, failures}`).
 */
import { ChClient } from "../../lib/ch/client.ts";
import { closeFd, O_RDWR, openFd } from "../../lib/ffi/libc.ts";
import { nullLogger } from "../../lib/log/logger.ts";
import { VmmProcess } from "../../lib/ch/vmm_process.ts";
import { makeAssets, openFdCount } from "./harness.ts";

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

// Warm up everything lazily loaded (libc, timers) before counting.
await client.ping();
const before = openFdCount();
let after = -1;
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
  // Counted while the VMM still runs: its pipes are part of `before` too.
  after = openFdCount();
  await call("vmm shutdown", () => client.shutdownVmm(), true);
  await vmm.exited;
} finally {
  await vmm.kill();
}
await Deno.remove(dir, { recursive: true });
console.log(JSON.stringify({ before, after, calls, failures }));
