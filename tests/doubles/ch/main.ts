/**
 * The strict cloud-hypervisor double: an executable serving CH's REST API on a unix socket.
 * Run through tests/doubles/cloud-hypervisor.
 *
 * CLI: `--api-socket <path>` (or `--api-socket path=<path>`), `--version`, `-v` (ignored).
 * Env knobs:
 * - CH_DOUBLE_VERSION: major version reported (default 54); ≤52 → OnDemand delta snapshots,
 *   ≥53 → snapshots refused until the background fill completes.
 * - CH_DOUBLE_FILL_REFUSALS: snapshot attempts refused after a v53+ OnDemand restore (default 1).
 * - CH_DOUBLE_FAIL: comma list of injected failures: `boot-exit` (process exits during vm.boot),
 *   `boot-error` (vm.boot answers 500), `create`, `snapshot` (vm.snapshot fails after writing
 *   config.json), `snapshot-exit` (exits during vm.snapshot), `restore-exit`, `vmm-shutdown-eof`
 *   (exits before answering vmm.shutdown), `no-api` (never listens).
 * - CH_DOUBLE_GUEST: module whose default export is a GuestFactory (tests/doubles/guest.ts);
 *   default: tests/doubles/ch/null_guest.ts.
 * - CH_DOUBLE_NET_STACK=1: answer ARP and TCP on the tap fds, relaying TCP port P to the guest's
 *   vsock port P (net_stack.ts), so probes can cross the real actor network.
 *
 * Requests are served one at a time; fds arrive with recvmsg (SCM_RIGHTS). A clean exit
 * (vmm.shutdown, SIGTERM, SIGINT) removes the api socket and the vsock socket; SIGKILL leaves them.
 *
 * @module
 */
import { recvWithFdsAsync, UnixFdListener } from "../../../lib/ffi/fdpass.ts";
import { closeFd, writeFd } from "../../../lib/ffi/libc.ts";
import type { GuestFactory } from "../guest.ts";
import { BadHttpRequest, encodeResponse, errorResponse, parseRequest } from "./http.ts";
import { type Answer, Vmm } from "./vmm.ts";
import nullGuest from "./null_guest.ts";

const MAX_CONNECTIONS = 10;

function log(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`cloud-hypervisor-double: ${line}\n`));
}

function usage(message: string): never {
  log(`error: ${message}`);
  Deno.exit(2);
}

function parseArgs(args: string[]): { apiSocket?: string; version: boolean } {
  let apiSocket: string | undefined;
  let version = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--version" || arg === "-V") version = true;
    else if (/^-v+$/.test(arg)) continue;
    else if (arg === "--api-socket" || arg.startsWith("--api-socket=")) {
      let value = arg.includes("=") ? arg.slice("--api-socket=".length) : args[++i];
      if (value === undefined) usage("--api-socket needs a value");
      // CH parses the value as an option list: path=<p> or fd=<n>, else the whole value is a path.
      if (value.startsWith("fd=")) usage("--api-socket fd=<n> is not supported by the double");
      if (value.startsWith("path=")) value = value.slice(5);
      if (value.includes(",") || value.includes("=")) {
        usage(`--api-socket path ${JSON.stringify(value)} contains ',' or '='`);
      }
      apiSocket = value;
    } else usage(`unknown argument ${JSON.stringify(arg)}`);
  }
  return { apiSocket, version };
}

async function loadGuest(): Promise<GuestFactory> {
  const spec = Deno.env.get("CH_DOUBLE_GUEST");
  if (!spec) return nullGuest;
  const url = spec.startsWith("file://") ? spec : new URL(`file://${spec}`).href;
  const mod = await import(url);
  if (typeof mod.default !== "function") {
    throw new Error(`${spec}: default export is not a GuestFactory`);
  }
  return mod.default as GuestFactory;
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args);
  const major = Number(Deno.env.get("CH_DOUBLE_VERSION") ?? "54");
  if (!Number.isInteger(major) || major <= 0) usage("CH_DOUBLE_VERSION must be a positive integer");
  if (args.version) {
    console.log(`cloud-hypervisor v${major}.0`);
    return;
  }
  if (!args.apiSocket) usage("--api-socket <path> is required");
  const fail = new Set((Deno.env.get("CH_DOUBLE_FAIL") ?? "").split(",").filter((s) => s));
  if (fail.has("no-api")) {
    log("injected failure: not listening (CH_DOUBLE_FAIL=no-api)");
    // Stay alive (a pending timer keeps Deno's event loop running) until killed.
    setInterval(() => {}, 1 << 30);
    return;
  }
  const vmm = new Vmm({
    version: major,
    fail,
    fillRefusals: Number(Deno.env.get("CH_DOUBLE_FILL_REFUSALS") ?? "1"),
    guestFactory: await loadGuest(),
    netStack: Deno.env.get("CH_DOUBLE_NET_STACK") === "1",
    log,
  });
  const apiSocket = args.apiSocket;
  await Deno.remove(apiSocket).catch(() => {});
  const listener = UnixFdListener.listen(apiSocket);
  log(`listening on ${apiSocket} (v${major}.0, pid ${Deno.pid})`);

  const exit = async (code: number) => {
    await vmm.cleanup().catch(() => {});
    await Deno.remove(apiSocket).catch(() => {});
    Deno.exit(code);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => void exit(0));
  }

  // One request at a time, across all connections.
  let turn: Promise<unknown> = Promise.resolve();
  const serialised = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = turn.then(fn);
    turn = run.catch(() => {});
    return run;
  };

  const serve = async (fd: number) => {
    let buf = new Uint8Array(0);
    let fds: number[] = [];
    try {
      for (;;) {
        const got = await recvWithFdsAsync(fd);
        fds.push(...got.fds);
        if (got.data.length === 0) return;
        const joined = new Uint8Array(buf.length + got.data.length);
        joined.set(buf);
        joined.set(got.data, buf.length);
        buf = joined;
        for (;;) {
          let req;
          try {
            req = parseRequest(buf);
          } catch (e) {
            if (!(e instanceof BadHttpRequest)) throw e;
            writeFd(fd, errorResponse(400, [e.message]));
            return;
          }
          if (!req) break;
          buf = buf.slice(req.consumed);
          const mine = fds;
          fds = [];
          const answer: Answer = await serialised(() =>
            vmm.handle(req.method, req.path, req.body, mine)
          );
          log(
            `${req.method} ${req.path} -> ${
              "exit" in answer ? `exit ${answer.exit}` : answer.status
            }`,
          );
          if ("exit" in answer) {
            if (!answer.silent) writeFd(fd, encodeResponse(answer.status ?? 200));
            await exit(answer.exit);
          } else {
            writeFd(fd, encodeResponse(answer.status, answer.body));
          }
          // fds not taken by a device are closed, as CH drops them.
          if (!("exit" in answer) && answer.status >= 300) mine.forEach((f) => closeFd(f));
        }
      }
    } catch (e) {
      log(`connection error: ${(e as Error).message}`);
    } finally {
      fds.forEach((f) => closeFd(f));
      closeFd(fd);
    }
  };

  // micro_http keeps at most 10 connections; one more is answered 503 and closed.
  let open = 0;
  for (;;) {
    const fd = await listener.accept();
    if (open >= MAX_CONNECTIONS) {
      log(`refusing a connection: ${open} already open`);
      try {
        writeFd(fd, errorResponse(503, ["Too many open connections"]));
      } catch {
        // the client went away
      }
      closeFd(fd);
      continue;
    }
    open++;
    serve(fd).finally(() => open--);
  }
}

if (import.meta.main) await main();
