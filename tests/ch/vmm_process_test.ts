/**
 * VmmProcess against real processes: the CH double, a binary that exits at once, one that never
 * listens; failures kill and reap, the started VMM outlives the caller's signal.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "../assert.ts";
import { type Attrs, captureLogger, type Logger } from "../../lib/log/logger.ts";
import { identityOf, killByIdentity, VmmProcess } from "../../lib/ch/vmm_process.ts";
import { CH_DOUBLE } from "./harness.ts";
import { readProcText } from "../../lib/ffi/procfs.ts";
import { withTempDir } from "../temp.ts";

/** Whether `pid` is a live (not zombie) process; /proc read through FFI (see lib/ffi/procfs.ts). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readProcText(`/proc/${pid}/stat`);
  return stat !== undefined && !stat.includes(") Z ");
}

/** A logger that calls `onLine` for every forwarded line (and captures like captureLogger). */
function watchingLogger(onLine: (msg: string) => void): Logger & { records: Attrs[] } {
  const inner = captureLogger();
  const wrap = (l: Logger): Logger => ({
    debug: l.debug,
    warn: l.warn,
    error: l.error,
    info: (msg, attrs) => {
      l.info(msg, attrs);
      if (attrs?.stream) onLine(msg);
    },
    with: (a) => wrap(l.with(a)),
  });
  return Object.assign(wrap(inner), { records: inner.records });
}

Deno.test("vmm process: a VMM that exits before answering fails the launch with its status", async () => {
  await withTempDir("vmm-proc-", async (dir) => {
    const logger = captureLogger();
    const err = await assertRejects(() =>
      VmmProcess.launch({
        binary: CH_DOUBLE,
        apiSocket: `${dir}/a.sock`,
        logger,
        args: ["--bogus"],
      })
    );
    assertMatch(
      err.message,
      /exited \(exit code 2\) before its API answered on .*a.sock; see its log lines/,
    );
    // Its stderr was forwarded before the error.
    assert(
      logger.records.some((r) =>
        r.msg === 'cloud-hypervisor-double: error: unknown argument "--bogus"'
      ),
      JSON.stringify(logger.records),
    );
    await assertRejects(
      () => VmmProcess.launch({ binary: `${dir}/missing`, apiSocket: `${dir}/a.sock`, logger }),
      /cannot start cloud-hypervisor .*missing/,
    );
  });
});

Deno.test("vmm process: a VMM that never answers is killed and reaped at the deadline", async () => {
  await withTempDir("vmm-proc-", async (dir) => {
    let pid = 0;
    const logger = watchingLogger(() => {});
    const err = await assertRejects(() =>
      VmmProcess.launch({
        binary: CH_DOUBLE,
        apiSocket: `${dir}/a.sock`,
        logger,
        env: { CH_DOUBLE_FAIL: "no-api" },
        readyTimeoutMs: 300,
      })
    );
    assertMatch(
      err.message,
      /did not answer vmm.ping on .*a.sock within 300 ms \(last error: .*ENOENT/,
    );
    pid = logger.records.find((r) => r.msg === "cloud-hypervisor started")?.pid as number;
    assert(pid > 0, JSON.stringify(logger.records));
    assert(!(await alive(pid)), "killed and reaped");
  });
});

Deno.test("vmm process: cancelling the start kills the child; once started it outlives the signal", async () => {
  await withTempDir("vmm-proc-", async (dir) => {
    const ctl = new AbortController();
    const logger = watchingLogger((msg) => {
      if (msg.includes("not listening")) ctl.abort(new Error("rpc cancelled"));
    });
    const err = await assertRejects(() =>
      VmmProcess.launch({
        binary: CH_DOUBLE,
        apiSocket: `${dir}/a.sock`,
        logger,
        env: { CH_DOUBLE_FAIL: "no-api" },
        signal: ctl.signal,
        readyTimeoutMs: 60_000,
      })
    );
    assertMatch(err.message, /starting cloud-hypervisor cancelled before its API answered/);
    const pid = logger.records.find((r) => r.pid)?.pid as number;
    assert(!(await alive(pid)), "killed and reaped");

    const rpc = new AbortController();
    const vmm = await VmmProcess.launch({
      binary: CH_DOUBLE,
      apiSocket: `${dir}/b.sock`,
      logger: captureLogger(),
      signal: rpc.signal,
    });
    try {
      rpc.abort();
      assertEquals((await vmm.client.ping()).pid, vmm.pid);
      assert(await alive(vmm.pid));
      assertEquals(vmm.exitStatus, undefined);
    } finally {
      const status = await vmm.kill();
      assertEquals(status.signal, "SIGKILL");
      assertEquals(await vmm.kill(), status, "kill is idempotent");
    }
  });
});

Deno.test("vmm process: a VMM found again by pid + start time is killed; a reused pid is left alone", async () => {
  await withTempDir("vmm-proc-", async (dir) => {
    const vmm = await VmmProcess.launch({
      binary: CH_DOUBLE,
      apiSocket: `${dir}/a.sock`,
      logger: captureLogger(),
    });
    try {
      assertEquals(vmm.identity, await identityOf(vmm.pid));
      const wrong = { pid: vmm.pid, startTime: String(Number(vmm.identity.startTime) + 1) };
      assertEquals(await killByIdentity(wrong), "reused");
      assert(await alive(vmm.pid));
      assertEquals(await killByIdentity(vmm.identity), "killed");
      assertEquals((await vmm.exited).signal, "SIGKILL");
      assertEquals(await killByIdentity(vmm.identity), "gone");
    } finally {
      await vmm.kill();
    }
  });
});
