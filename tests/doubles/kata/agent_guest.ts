/**
 * A strict kata-agent double, as a {@link Guest} the cloud-hypervisor double runs
 * (`CH_DOUBLE_GUEST=<this file>`; the default export is the {@link GuestFactory}).
 *
 * It serves `grpc.AgentService` over ttrpc on vsock port 1024 and rejects what the real agent
 * (kata 3.31) rejects, so a worker that passes here has its requests right:
 * - UpdateInterface: the NIC is found by `hwAddr` among the VM's net devices; the mask must be a
 *   prefix length ("30"); the MTU must be non-zero.
 * - UpdateRoutes: replaces the table in order; a gateway must be on-link through a scope-link
 *   route earlier in the list; the default route's dest is "" ("default" does not parse).
 * - AddARPNeighbors: an existing device, a MAC, an explicit state.
 * - CreateSandbox once: a second one (e.g. on a restored guest) answers ALREADY_EXISTS.
 * - CreateContainer: after CreateSandbox; `OCI.Linux` present; no network/cgroup/time namespace
 *   and no namespace path; exactly one "blk" storage whose source `/dev/vdX` is a data disk of
 *   the VM (vda = disks[0] is the read-only guest image, vdb = disks[1], ...) holding an ext4
 *   superblock (magic 0xEF53 at byte 1080), mounted where `Root.Path` points.
 * - StartContainer only after CreateContainer; ReadStdout/ReadStderr need `len` > 0, return at
 *   most `len` bytes, block while a running process has no output, and return empty data at the
 *   end of output.
 *
 * Workloads are emulated from the process args (basename of args[0]):
 * - `counter`: writes `count 1` when started, then one `count N` line per guest tick. Ticks are
 *   driven by the host, never by timers: SetGuestDateTime (the clock moved: a restore), the debug
 *   console command `tick [n]`, or {@link AgentGuest.tick} in-process. Runs until signalled.
 * - `emit`: `--stdout TEXT`, `--stderr TEXT` (each written as a line, repeatable) then exits with
 *   `--exit N` (default 0); WaitProcess returns N.
 * - anything else: runs silently until signalled.
 * A signalled process exits with 128 + signal.
 *
 * Readiness: a container whose env has `READYZ_PORT=P` serves HTTP on vsock port P (the double
 * stands in for the guest's TCP port P, which no test can reach): `GET <any path>` answers
 * `READYZ_STATUS` (default 200) once the process runs, 503 before. A lifecycle test plugs a probe
 * that dials the hybrid-vsock socket at port P (`dialHybridVsock`) and sends the request.
 *
 * Debug console on vsock port 1026, only when the kernel cmdline has `agent.debug_console` and
 * `agent.debug_console_vport=1026` (as the real agent): a line-oriented "shell" that echoes each
 * line (as a PTY does) and runs `echo`, `ip addr|route|neigh`, `date +%s`, `cat /proc/mounts`,
 * `tick [n]`, separated by `;` (braces and `2>&1` ignored).
 *
 * Knobs on the kernel cmdline (so a kata config's kernel_params can inject faults):
 * - `double.agent=absent`: nothing listens on 1024 (dials are refused until their deadline).
 * - `double.agent=hang`: 1024 accepts connections and never answers a call.
 * - `double.agent_listen_after=N`: the first N connects to 1024 are refused (a slow boot).
 *
 * Pause stops everything: calls, console and probes wait for resume. The whole guest state
 * (sandbox, network, containers, counters, unread output, guest clock) is what snapshot() returns
 * and restore() continues from.
 *
 * @module
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import {
  AddARPNeighborsRequestSchema,
  CreateContainerRequestSchema,
  CreateSandboxRequestSchema,
  DestroySandboxRequestSchema,
  ReadStreamRequestSchema,
  ReadStreamResponseSchema,
  RemoveContainerRequestSchema,
  RoutesSchema,
  SetGuestDateTimeRequestSchema,
  SignalProcessRequestSchema,
  StartContainerRequestSchema,
  UpdateInterfaceRequestSchema,
  UpdateRoutesRequestSchema,
  WaitProcessRequestSchema,
  WaitProcessResponseSchema,
} from "../../../proto/gen/kata/agent_pb.ts";
import { InterfaceSchema, IPFamily, RouteSchema } from "../../../proto/gen/kata/types_pb.ts";
import { Code, TtrpcError } from "../../../lib/ttrpc/status.ts";
import { TtrpcServer } from "../../../lib/ttrpc/server.ts";
import type { Guest, GuestContext, GuestFactory } from "../guest.ts";

export const AGENT_PORT = 1024;
export const DEBUG_CONSOLE_PORT = 1026;
const SERVICE = "grpc.AgentService";
const SNAPSHOT_MAGIC = "ateom kata-agent double v1\n";
const EXT4_MAGIC_OFFSET = 1080;
const RT_SCOPE_LINK = 253;

interface IfaceState {
  name: string;
  hwAddr: string;
  address: string;
  prefix: number;
  mtu: number;
}
interface RouteState {
  dest: string;
  gateway: string;
  device: string;
  scope: number;
}
interface NeighState {
  ip: string;
  device: string;
  lladdr: string;
  state: number;
}
type Workload =
  | { kind: "counter" }
  | { kind: "emit"; stdout: string[]; stderr: string[]; exit: number }
  | { kind: "idle" };
interface ContainerState {
  id: string;
  execId: string;
  status: "created" | "running" | "stopped";
  workload: Workload;
  /** The counter's last emitted value. */
  count: number;
  /** Unread output, base64 in snapshots. */
  stdout: Uint8Array;
  stderr: Uint8Array;
  exitStatus: number | null;
  readyzPort: number | null;
  readyzStatus: number;
  mount: { source: string; mountPoint: string };
}
interface GuestState {
  sandbox: { id: string; hostname: string; dns: string[] } | null;
  interfaces: IfaceState[];
  routes: RouteState[];
  neighbors: NeighState[];
  containers: ContainerState[];
  /** Guest wall clock (ms since the epoch) as of `clockSetAt` on the host's monotonic clock. */
  clockMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function fail(code: number, message: string): never {
  throw new TtrpcError(code, message);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}
function unb64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function parseIPv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    return null;
  }
  return parts.reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0);
}

function parseCidr(text: string): { net: number; prefix: number } | null {
  const [addr, prefixText, extra] = text.split("/");
  const ip = parseIPv4(addr);
  if (ip === null || extra !== undefined || !/^\d{1,2}$/.test(prefixText ?? "")) return null;
  const prefix = Number(prefixText);
  if (prefix > 32) return null;
  return { net: (ip & maskOf(prefix)) >>> 0, prefix };
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffff_ffff << (32 - prefix)) >>> 0;
}

function workloadOf(args: string[]): Workload {
  const name = (args[0] ?? "").split("/").pop();
  if (name === "counter") return { kind: "counter" };
  if (name !== "emit") return { kind: "idle" };
  const w = { kind: "emit" as const, stdout: [] as string[], stderr: [] as string[], exit: 0 };
  for (let i = 1; i < args.length; i += 2) {
    const value = args[i + 1];
    if (value === undefined) fail(Code.INVALID_ARGUMENT, `emit: ${args[i]} needs a value`);
    if (args[i] === "--stdout") w.stdout.push(value);
    else if (args[i] === "--stderr") w.stderr.push(value);
    else if (args[i] === "--exit") w.exit = Number(value);
    else fail(Code.INVALID_ARGUMENT, `emit: unknown option ${args[i]}`);
  }
  return w;
}

/** Reads whether the file at `path` has an ext4 superblock magic. */
function hasExt4Magic(path: string): boolean {
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(path, { read: true });
    file.seekSync(EXT4_MAGIC_OFFSET, Deno.SeekMode.Start);
    const magic = new Uint8Array(2);
    if (file.readSync(magic) !== 2) return false;
    return magic[0] === 0x53 && magic[1] === 0xef;
  } catch {
    return false;
  } finally {
    file?.close();
  }
}

function emptyState(): GuestState {
  return {
    sandbox: null,
    interfaces: [],
    routes: [],
    neighbors: [],
    containers: [],
    clockMs: Date.now(),
  };
}

/** The kata-agent double. */
export class AgentGuest implements Guest {
  #ctx: GuestContext | undefined;
  #state: GuestState = emptyState();
  /** Host monotonic time when the guest clock last ran from `clockMs`; null while paused. */
  #clockRunningSince: number | null = null;
  #paused = false;
  #resumed: PromiseWithResolvers<void> = Promise.withResolvers();
  #changed: PromiseWithResolvers<void> = Promise.withResolvers();
  #server = this.#makeServer();
  #conns = new Set<Deno.UnixConn>();
  #agentConnects = 0;
  #stopped = new AbortController();

  // ---- Guest contract ----

  boot(ctx: GuestContext): Promise<void> {
    this.#start(ctx, emptyState());
    ctx.serial("kata-agent double: booted; agent listening on vsock port 1024");
    return Promise.resolve();
  }

  restore(ctx: GuestContext, state: Uint8Array): Promise<void> {
    // Running, as the contract has it; the CH double pauses it right after unless `resume: true`.
    this.#start(ctx, decodeState(state));
    ctx.serial("kata-agent double: restored");
    return Promise.resolve();
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    if (this.#clockRunningSince !== null) {
      this.#state.clockMs += performance.now() - this.#clockRunningSince;
      this.#clockRunningSince = null;
    }
    this.#resumed = Promise.withResolvers();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#clockRunningSince = performance.now();
    this.#resumed.resolve();
  }

  snapshot(): Uint8Array {
    if (!this.#paused) throw new Error("kata-agent double: snapshot() while running; pause first");
    return encodeState(this.#state);
  }

  vsockConnect(port: number): ((conn: Deno.UnixConn) => void) | undefined {
    if (!this.#ctx || this.#stopped.signal.aborted) return undefined;
    if (port === AGENT_PORT) {
      const mode = this.#knob("double.agent");
      if (mode === "absent") return undefined;
      this.#agentConnects++;
      if (this.#agentConnects <= Number(this.#knob("double.agent_listen_after") ?? 0)) {
        return undefined;
      }
      return (conn) => {
        this.#conns.add(conn);
        const done = mode === "hang" ? this.#hold(conn) : this.#server.serve(conn);
        done.finally(() => this.#conns.delete(conn));
      };
    }
    if (port === DEBUG_CONSOLE_PORT && this.#debugConsoleEnabled()) {
      return (conn) => this.#track(conn, this.#console(conn));
    }
    if (this.#state.containers.some((c) => c.readyzPort === port && c.status !== "stopped")) {
      return (conn) => this.#track(conn, this.#http(conn, port));
    }
    return undefined;
  }

  shutdown(): Promise<void> {
    this.#stopped.abort();
    this.#server.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
    this.#conns.clear();
    this.#resumed.resolve();
    this.#notify();
    return Promise.resolve();
  }

  // ---- In-process hooks for tests ----

  /** Advances every running counter by `n` counts (as the debug console's `tick n`); not while paused. */
  tick(n = 1): void {
    if (this.#paused) return;
    for (const c of this.#state.containers) {
      if (c.status !== "running" || c.workload.kind !== "counter") continue;
      for (let i = 0; i < n; i++) this.#write(c, "stdout", `count ${++c.count}\n`);
    }
    this.#notify();
  }

  /** The current counter value of a container (undefined when it has none). */
  counter(containerId: string): number | undefined {
    return this.#state.containers.find((c) => c.id === containerId)?.count;
  }

  /** The guest's wall clock in ms since the epoch. */
  clock(): number {
    const running = this.#clockRunningSince === null
      ? 0
      : performance.now() - this.#clockRunningSince;
    return this.#state.clockMs + running;
  }

  // ---- internals ----

  #start(ctx: GuestContext, state: GuestState): void {
    this.#ctx = ctx;
    this.#state = state;
    this.#stopped = new AbortController();
    this.#clockRunningSince = performance.now();
    this.#paused = false;
  }

  #knob(name: string): string | undefined {
    for (const token of (this.#ctx?.cmdline ?? "").split(/\s+/)) {
      if (token.startsWith(`${name}=`)) return token.slice(name.length + 1);
    }
    return undefined;
  }

  #debugConsoleEnabled(): boolean {
    const tokens = (this.#ctx?.cmdline ?? "").split(/\s+/);
    return tokens.includes("agent.debug_console") &&
      tokens.includes(`agent.debug_console_vport=${DEBUG_CONSOLE_PORT}`);
  }

  #track(conn: Deno.UnixConn, done: Promise<void>): void {
    this.#conns.add(conn);
    done.catch(() => {}).finally(() => {
      this.#conns.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    });
  }

  async #hold(conn: Deno.UnixConn): Promise<void> {
    const buf = new Uint8Array(4096);
    try {
      while ((await conn.read(buf)) !== null) {
        // swallow requests, answer nothing
      }
    } catch {
      // closed
    }
  }

  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers();
  }

  /** Resolves when the guest is running; rejects when `signal` aborts or the guest stops. */
  async #running(signal?: AbortSignal): Promise<void> {
    while (this.#paused) {
      await this.#wait(this.#resumed.promise, signal);
    }
    if (this.#stopped.signal.aborted) fail(Code.UNAVAILABLE, "the guest shut down");
  }

  async #wait(promise: Promise<void>, signal?: AbortSignal): Promise<void> {
    const aborted = Promise.withResolvers<void>();
    const onAbort = () => aborted.reject(new TtrpcError(Code.CANCELLED, "call cancelled"));
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#stopped.signal.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.race([promise, aborted.promise]);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#stopped.signal.removeEventListener("abort", onAbort);
    }
  }

  #write(c: ContainerState, stream: "stdout" | "stderr", text: string): void {
    c[stream] = concat(c[stream], encoder.encode(text));
  }

  #exit(c: ContainerState, status: number): void {
    c.status = "stopped";
    c.exitStatus = status;
    this.#notify();
  }

  #container(id: string): ContainerState {
    const c = this.#state.containers.find((x) => x.id === id);
    if (!c) fail(Code.NOT_FOUND, `container ${id} not found`);
    return c;
  }

  #process(containerId: string, execId: string): ContainerState {
    const c = this.#container(containerId);
    if (execId !== c.execId) {
      fail(Code.NOT_FOUND, `process ${execId} of container ${containerId} not found`);
    }
    return c;
  }

  #makeServer(): TtrpcServer {
    const server = new TtrpcServer();
    const unary = <I extends DescMessage, O extends DescMessage>(
      method: string,
      input: I,
      output: O,
      handle: (
        req: MessageShape<I>,
        signal: AbortSignal,
      ) => Promise<MessageInitShape<O>> | MessageInitShape<O>,
    ) => {
      server.register(SERVICE, method, async (payload, ctx) => {
        await this.#running(ctx.signal);
        const req = fromBinary(input, payload);
        const res = await handle(req, ctx.signal);
        await this.#running(ctx.signal); // a paused guest does not answer
        return toBinary(output, create(output, res));
      });
    };

    unary("CreateSandbox", CreateSandboxRequestSchema, EmptySchema, (req) => {
      if (this.#state.sandbox) {
        fail(Code.ALREADY_EXISTS, `sandbox ${this.#state.sandbox.id} already exists`);
      }
      for (const line of req.dns) {
        if (line.includes("\n") || !/^(nameserver|search|domain|options|sortlist) \S/.test(line)) {
          fail(
            Code.INTERNAL,
            `setup guest dns: ${JSON.stringify(line)} is not one resolv.conf directive`,
          );
        }
      }
      this.#state.sandbox = { id: req.sandboxId, hostname: req.hostname, dns: req.dns };
      return {};
    });
    unary("DestroySandbox", DestroySandboxRequestSchema, EmptySchema, () => {
      if (!this.#state.sandbox) fail(Code.FAILED_PRECONDITION, "no sandbox to destroy");
      for (const c of this.#state.containers) if (c.status === "running") this.#exit(c, 128 + 9);
      this.#state.containers = [];
      this.#state.sandbox = null;
      this.#notify();
      return {};
    });
    unary("UpdateInterface", UpdateInterfaceRequestSchema, InterfaceSchema, (req) => {
      const iface = req.interface;
      if (!iface) fail(Code.INVALID_ARGUMENT, "empty update interface request");
      const hw = iface.hwAddr.toLowerCase();
      if (!this.#ctx!.nets.some((n) => n.mac.toLowerCase() === hw)) {
        fail(
          Code.INTERNAL,
          `update interface: Link not found (hwAddr ${JSON.stringify(iface.hwAddr)})`,
        );
      }
      if (iface.mtu === 0n) fail(Code.INTERNAL, "update interface: MTU must be non-zero");
      if (iface.IPAddresses.length !== 1) {
        fail(
          Code.INTERNAL,
          `update interface: the double supports one address, got ${iface.IPAddresses.length}`,
        );
      }
      const a = iface.IPAddresses[0];
      if (a.family !== IPFamily.v4 || parseIPv4(a.address) === null) {
        fail(Code.INTERNAL, `update interface: invalid IPv4 address ${JSON.stringify(a.address)}`);
      }
      if (!/^\d{1,2}$/.test(a.mask) || Number(a.mask) > 32) {
        fail(
          Code.INTERNAL,
          `update interface: mask ${JSON.stringify(a.mask)} is not a prefix length`,
        );
      }
      const name = iface.name || iface.device;
      this.#state.interfaces = this.#state.interfaces.filter((i) =>
        i.hwAddr !== hw && i.name !== name
      );
      this.#state.interfaces.push({
        name,
        hwAddr: hw,
        address: a.address,
        prefix: Number(a.mask),
        mtu: Number(iface.mtu),
      });
      return iface;
    });
    unary("UpdateRoutes", UpdateRoutesRequestSchema, RoutesSchema, (req) => {
      if (!req.routes) fail(Code.INVALID_ARGUMENT, "empty update routes request");
      const table: RouteState[] = [];
      for (const r of req.routes.Routes) {
        const where = `route ${JSON.stringify(r.dest)} via ${JSON.stringify(r.gateway)}`;
        if (!this.#state.interfaces.some((i) => i.name === r.device)) {
          fail(
            Code.INTERNAL,
            `Failed to update routes: ${where}: link ${JSON.stringify(r.device)} not found`,
          );
        }
        if (r.dest !== "" && parseCidr(r.dest) === null) {
          fail(
            Code.INTERNAL,
            `Failed to update routes: ${where}: invalid destination (a default route has dest "")`,
          );
        }
        if (r.gateway !== "") {
          const gw = parseIPv4(r.gateway);
          const onLink = gw !== null && table.some((t) => {
            const net = parseCidr(t.dest);
            return t.scope === RT_SCOPE_LINK && t.device === r.device && net !== null &&
              ((gw & maskOf(net.prefix)) >>> 0) === net.net;
          });
          if (!onLink) {
            fail(
              Code.INTERNAL,
              `Failed to update routes: ${where}: Network is unreachable (gateway not on-link; add its scope-link route first)`,
            );
          }
        }
        table.push({ dest: r.dest, gateway: r.gateway, device: r.device, scope: r.scope });
      }
      this.#state.routes = table;
      return {
        Routes: table.map((t) => create(RouteSchema, { ...t, family: IPFamily.v4 })),
      };
    });
    unary("AddARPNeighbors", AddARPNeighborsRequestSchema, EmptySchema, (req) => {
      for (const n of req.neighbors?.ARPNeighbors ?? []) {
        const ip = n.toIPAddress?.address ?? "";
        if (parseIPv4(ip) === null) {
          fail(Code.INTERNAL, `add ARP neighbor: invalid address ${JSON.stringify(ip)}`);
        }
        if (!this.#state.interfaces.some((i) => i.name === n.device)) {
          fail(Code.INTERNAL, `add ARP neighbor: link ${JSON.stringify(n.device)} not found`);
        }
        if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(n.lladdr)) {
          fail(Code.INTERNAL, `add ARP neighbor: invalid lladdr ${JSON.stringify(n.lladdr)}`);
        }
        if (n.state === 0) {
          fail(Code.INTERNAL, "add ARP neighbor: state 0 (NUD_NONE); send NUD_PERMANENT (0x80)");
        }
        this.#state.neighbors = this.#state.neighbors.filter((x) => x.ip !== ip);
        this.#state.neighbors.push({
          ip,
          device: n.device,
          lladdr: n.lladdr.toLowerCase(),
          state: n.state,
        });
      }
      return {};
    });
    unary("SetGuestDateTime", SetGuestDateTimeRequestSchema, EmptySchema, (req) => {
      if (req.Sec <= 0n) fail(Code.INVALID_ARGUMENT, `set guest time: invalid seconds ${req.Sec}`);
      this.#state.clockMs = Number(req.Sec) * 1000 + Number(req.Usec) / 1000;
      this.#clockRunningSince = performance.now();
      this.tick(); // the clock moved: time passed for the workloads
      return {};
    });
    unary("CreateContainer", CreateContainerRequestSchema, EmptySchema, (req) => {
      this.#createContainer(req);
      return {};
    });
    unary("StartContainer", StartContainerRequestSchema, EmptySchema, (req) => {
      const c = this.#container(req.containerId);
      if (c.status !== "created") {
        fail(Code.FAILED_PRECONDITION, `container ${c.id} was already started`);
      }
      c.status = "running";
      const w = c.workload;
      if (w.kind === "counter") this.#write(c, "stdout", `count ${++c.count}\n`);
      if (w.kind === "emit") {
        for (const line of w.stdout) this.#write(c, "stdout", `${line}\n`);
        for (const line of w.stderr) this.#write(c, "stderr", `${line}\n`);
        this.#exit(c, w.exit);
      }
      this.#notify();
      return {};
    });
    unary("SignalProcess", SignalProcessRequestSchema, EmptySchema, (req) => {
      const c = req.execId === ""
        ? this.#container(req.containerId)
        : this.#process(req.containerId, req.execId);
      if (c.status !== "running") {
        fail(Code.FAILED_PRECONDITION, `container ${c.id} is not running`);
      }
      if (req.signal !== 0) this.#exit(c, 128 + req.signal);
      return {};
    });
    unary(
      "WaitProcess",
      WaitProcessRequestSchema,
      WaitProcessResponseSchema,
      async (req, signal) => {
        const c = this.#process(req.containerId, req.execId);
        while (c.exitStatus === null) {
          await this.#wait(this.#changed.promise, signal);
          await this.#running(signal);
        }
        return { status: c.exitStatus };
      },
    );
    unary("RemoveContainer", RemoveContainerRequestSchema, EmptySchema, (req) => {
      const c = this.#container(req.containerId);
      if (c.status === "running") this.#exit(c, 128 + 9);
      this.#state.containers = this.#state.containers.filter((x) => x !== c);
      this.#notify();
      return {};
    });
    for (const [method, stream] of [["ReadStdout", "stdout"], ["ReadStderr", "stderr"]] as const) {
      unary(method, ReadStreamRequestSchema, ReadStreamResponseSchema, async (req, signal) => {
        if (req.len === 0) fail(Code.INVALID_ARGUMENT, `${method}: len must be > 0`);
        const c = this.#process(req.containerId, req.execId);
        while (c[stream].length === 0 && c.status !== "stopped") {
          await this.#wait(this.#changed.promise, signal);
          await this.#running(signal);
          if (!this.#state.containers.includes(c)) {
            fail(Code.NOT_FOUND, `container ${c.id} not found`);
          }
        }
        const data = c[stream].slice(0, req.len);
        c[stream] = c[stream].slice(data.length);
        return { data };
      });
    }
    return server;
  }

  #createContainer(req: MessageShape<typeof CreateContainerRequestSchema>): void {
    const id = req.containerId;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]+$/.test(id)) {
      fail(Code.INVALID_ARGUMENT, "invalid container id");
    }
    if (!this.#state.sandbox) {
      fail(Code.FAILED_PRECONDITION, "sandbox not created: call CreateSandbox first");
    }
    if (this.#state.containers.some((c) => c.id === id)) {
      fail(Code.ALREADY_EXISTS, `container ${id} already exists`);
    }
    const oci = req.OCI;
    if (!oci) fail(Code.INVALID_ARGUMENT, "CreateContainer without OCI spec");
    if (!oci.Linux) fail(Code.INTERNAL, "Spec does not contain linux field");
    for (const ns of oci.Linux.Namespaces) {
      if (["network", "cgroup", "time"].includes(ns.Type)) {
        fail(
          Code.INTERNAL,
          `namespace ${ns.Type} must not be in the guest spec (the host owns it)`,
        );
      }
      if (ns.Path !== "") {
        fail(
          Code.INTERNAL,
          `namespace ${ns.Type} path ${ns.Path}: No such file or directory (host paths do not exist in the guest)`,
        );
      }
    }
    if (!oci.Process || oci.Process.Args.length === 0) {
      fail(Code.INVALID_ARGUMENT, "spec has no process args");
    }
    if (req.storages.length !== 1 || req.storages[0].driver !== "blk") {
      fail(
        Code.INTERNAL,
        `the double expects exactly one "blk" rootfs storage, got ${
          req.storages.map((s) => s.driver).join(",") || "none"
        }`,
      );
    }
    const s = req.storages[0];
    const dev = /^\/dev\/vd([a-z]+)$/.exec(s.source);
    if (!dev) {
      fail(
        Code.INTERNAL,
        `blk storage source ${JSON.stringify(s.source)}: no such device (expected /dev/vdX)`,
      );
    }
    const index = [...dev[1]].reduce((acc, ch) => acc * 26 + (ch.charCodeAt(0) - 96), 0) - 1;
    const disks = this.#ctx!.disks;
    if (index === 0) {
      fail(
        Code.INTERNAL,
        `blk storage ${s.source} is the read-only guest image, not a container disk`,
      );
    }
    if (index >= disks.length) {
      fail(
        Code.INTERNAL,
        `blk storage ${s.source}: no such device (the VM has ${disks.length} disks)`,
      );
    }
    if (s.fstype !== "ext4") {
      fail(
        Code.INTERNAL,
        `blk storage ${s.source}: fstype ${JSON.stringify(s.fstype)}, expected ext4`,
      );
    }
    if (!hasExt4Magic(disks[index])) {
      fail(
        Code.INTERNAL,
        `mount ${s.source} (${
          disks[index]
        }) on ${s.mountPoint} as ext4: invalid argument (no ext4 superblock)`,
      );
    }
    if (
      s.mountPoint === "" || this.#state.containers.some((c) => c.mount.mountPoint === s.mountPoint)
    ) {
      fail(
        Code.INTERNAL,
        `blk storage mount point ${JSON.stringify(s.mountPoint)} is empty or in use`,
      );
    }
    if (oci.Root?.Path !== s.mountPoint) {
      fail(
        Code.INTERNAL,
        `Root.Path ${JSON.stringify(oci.Root?.Path ?? "")} is not the rootfs storage mount point ${
          JSON.stringify(s.mountPoint)
        }`,
      );
    }
    const env = Object.fromEntries(oci.Process.Env.map((e) => {
      const at = e.indexOf("=");
      return at < 0 ? [e, ""] : [e.slice(0, at), e.slice(at + 1)];
    }));
    this.#state.containers.push({
      id,
      execId: req.execId || id,
      status: "created",
      workload: workloadOf(oci.Process.Args),
      count: 0,
      stdout: new Uint8Array(),
      stderr: new Uint8Array(),
      exitStatus: null,
      readyzPort: env.READYZ_PORT ? Number(env.READYZ_PORT) : null,
      readyzStatus: env.READYZ_STATUS ? Number(env.READYZ_STATUS) : 200,
      mount: { source: s.source, mountPoint: s.mountPoint },
    });
  }

  // ---- debug console and readiness ----

  async #console(conn: Deno.UnixConn): Promise<void> {
    const buf = new Uint8Array(4096);
    let pending = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      pending += decoder.decode(buf.subarray(0, n), { stream: true });
      let nl;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl).replace(/\r$/, "");
        pending = pending.slice(nl + 1);
        await this.#running(this.#stopped.signal);
        const out = `${line}\n${this.#shell(line)}`;
        await conn.write(encoder.encode(out));
      }
    }
  }

  #shell(line: string): string {
    let out = "";
    for (const raw of line.split(";")) {
      const words = raw.replace(/[{}]/g, " ").replace(/\d?>&\d/g, " ").trim().split(/\s+/)
        .filter((w) => w !== "")
        .map((w) => w.replace(/''/g, "").replace(/^'(.*)'$/, "$1").replace(/^"(.*)"$/, "$1"));
      if (words.length === 0) continue;
      out += this.#command(words);
    }
    return out;
  }

  #command([cmd, ...args]: string[]): string {
    const s = this.#state;
    switch (cmd) {
      case "echo":
        return `${args.join(" ")}\n`;
      case "tick": {
        this.tick(args[0] ? Number(args[0]) : 1);
        return "";
      }
      case "date":
        return args[0] === "+%s"
          ? `${Math.floor(this.clock() / 1000)}\n`
          : `${new Date(this.clock()).toUTCString()}\n`;
      case "hostname":
        return `${s.sandbox?.hostname ?? "localhost"}\n`;
      case "cat":
      case "grep":
        if (args.includes("/etc/resolv.conf")) {
          return (s.sandbox?.dns ?? []).map((l) => `${l}\n`).join("");
        }
        if (args.includes("/proc/mounts")) {
          return s.containers.map((c) =>
            `${c.mount.source} ${c.mount.mountPoint} ext4 rw,relatime 0 0\n`
          ).join("");
        }
        break;
      case "ip":
        switch (args[0]) {
          case "addr":
          case "a":
            return s.interfaces.map((i, n) =>
              `${
                n + 2
              }: ${i.name}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu ${i.mtu}\n    link/ether ${i.hwAddr}\n    inet ${i.address}/${i.prefix} scope global ${i.name}\n`
            ).join("");
          case "route":
          case "r":
            return s.routes.map((r) =>
              r.dest === ""
                ? `default via ${r.gateway} dev ${r.device}\n`
                : `${r.dest} dev ${r.device}${r.scope === RT_SCOPE_LINK ? " scope link" : ""}${
                  r.gateway ? ` via ${r.gateway}` : ""
                }\n`
            ).join("");
          case "neigh":
          case "n":
            return s.neighbors.map((n) =>
              `${n.ip} dev ${n.device} lladdr ${n.lladdr} ${
                n.state === 0x80 ? "PERMANENT" : `state ${n.state}`
              }\n`
            ).join("");
        }
    }
    return `sh: ${[cmd, ...args].join(" ")}: not found\n`;
  }

  async #http(conn: Deno.UnixConn, port: number): Promise<void> {
    const buf = new Uint8Array(8192);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buf);
      if (n === null) return;
      head += decoder.decode(buf.subarray(0, n));
    }
    await this.#running(this.#stopped.signal);
    const c = this.#state.containers.find((x) => x.readyzPort === port && x.status !== "stopped");
    const status = c?.status === "running" ? c.readyzStatus : 503;
    const body = status >= 200 && status < 300 ? "ok\n" : "not ready\n";
    await conn.write(encoder.encode(
      `HTTP/1.1 ${status} ${status === 200 ? "OK" : "Status"}\r\ncontent-type: text/plain\r\n` +
        `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    ));
  }
}

function encodeState(state: GuestState): Uint8Array {
  const json = JSON.stringify({
    ...state,
    containers: state.containers.map((c) => ({
      ...c,
      stdout: b64(c.stdout),
      stderr: b64(c.stderr),
    })),
  });
  return encoder.encode(SNAPSHOT_MAGIC + json);
}

function decodeState(bytes: Uint8Array): GuestState {
  const text = decoder.decode(bytes);
  if (!text.startsWith(SNAPSHOT_MAGIC)) {
    throw new Error(
      "kata-agent double: restore: the state bytes are not a kata-agent double snapshot",
    );
  }
  const raw = JSON.parse(text.slice(SNAPSHOT_MAGIC.length));
  return {
    ...raw,
    containers: raw.containers.map((c: ContainerState & { stdout: string; stderr: string }) => ({
      ...c,
      stdout: unb64(c.stdout),
      stderr: unb64(c.stderr),
    })),
  };
}

const factory: GuestFactory = () => new AgentGuest();
export default factory;
