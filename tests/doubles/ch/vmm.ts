/**
 * The CH double's VMM: the REST endpoints and the VM state machine, strict where CH is strict
 * (and stricter on request bodies, see shapes.ts). One instance per process, one request at a
 * time (the server serialises calls).
 *
 * Behaviours emulated (CH v52–v54): device ids from one counter in creation order at boot
 * (`_disk0`, `_disk1`, `_net2`, `_vsock3`); snapshots only when Paused, into an existing
 * directory, files created exclusively; restore only on a fresh VMM, `net_fds` checked against
 * the snapshot's fd-backed nets and the fds received; vsock/serial/disk paths reopened verbatim
 * from config.json; a leftover vsock socket file makes the bind fail; OnDemand restores: v52's
 * next snapshot holds only pages touched since the restore, v53+ refuse snapshots until the
 * background fill completes (after `fillRefusals` refused attempts: deterministic, no timer).
 *
 * @module
 */
import type { Guest, GuestContext, GuestFactory } from "../guest.ts";
import { diskDigest, GuestMemory, PAGE, STATE_OFFSET } from "./memory.ts";
import * as shapes from "./shapes.ts";
import { NetStack } from "./net_stack.ts";

export type VmState = "Created" | "Running" | "Shutdown" | "Paused";

/** What a handler answers; `exit` makes the process exit (after answering unless `silent`). */
export type Answer =
  | { status: number; body?: string }
  | { exit: number; silent: boolean; status?: number };

export interface VmmOptions {
  /** Major version reported by vmm.ping and driving the OnDemand behaviour. */
  version: number;
  /** Injected failures (CH_DOUBLE_FAIL). */
  fail: ReadonlySet<string>;
  /** Snapshot attempts refused after a v53+ OnDemand restore before the fill completes. */
  fillRefusals: number;
  guestFactory: GuestFactory;
  log: (line: string) => void;
  /** Run a {@link NetStack} on each fd-backed net device (CH_DOUBLE_NET_STACK=1). */
  netStack?: boolean;
}

type Json = Record<string, unknown>;

const ok = (body?: unknown): Answer =>
  body === undefined ? { status: 204 } : { status: 200, body: JSON.stringify(body) };
const err = (status: number, ...messages: string[]): Answer => ({
  status,
  body: JSON.stringify(messages),
});
const badRequest = () => err(400, "Bad Request");

/** A failure inside a handler that maps to a CH error answer. */
class ApiFailure extends Error {
  constructor(readonly answer: Answer) {
    super("api failure");
  }
}

function fileUrlPath(url: string, what: string, top: string): string {
  if (!url.startsWith("file://")) {
    throw new ApiFailure(err(500, top, `${what}: unsupported URL ${url}, expected file://<path>`));
  }
  return url.slice("file://".length);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

interface RestoreInfo {
  mode: "Copy" | "OnDemand";
  memoryPath: string;
  fillPending: boolean;
  refusalsLeft: number;
}

export class Vmm {
  #config: Json | undefined;
  #state: VmState | undefined;
  /** Received tap fds per net config index. */
  #netFds = new Map<Json, number[]>();
  #memory: GuestMemory | undefined;
  #guest: Guest | undefined;
  #vsock: Deno.UnixListener | undefined;
  #vsockPath: string | undefined;
  #restore: RestoreInfo | undefined;
  #deviceIdCnt = 0;
  #netStacks: NetStack[] = [];
  #hostPort = 1 << 30;

  constructor(readonly options: VmmOptions) {}

  /** Dispatches one request; `fds` arrived with it as SCM_RIGHTS. */
  async handle(
    method: string,
    path: string,
    body: string | undefined,
    fds: number[],
  ): Promise<Answer> {
    const route = ROUTES[path];
    if (!route) return err(404, "Not Found");
    if (route.method !== method) return badRequest();
    if (route.body === "none" && body !== undefined) return badRequest();
    let parsed: unknown;
    if (route.body !== "none") {
      if (body === undefined) return badRequest();
      try {
        parsed = JSON.parse(body);
      } catch (e) {
        return err(400, "Failed to deserialize JSON", (e as Error).message);
      }
      const problem = shapes.validate(route.body, parsed, route.body.name);
      if (problem) return err(400, "Failed to deserialize JSON", problem);
    }
    try {
      return await route.run(this, parsed as Json, fds);
    } catch (e) {
      if (e instanceof ApiFailure) return e.answer;
      throw e;
    }
  }

  ping(): Answer {
    const n = this.options.version;
    return ok({ build_version: `v${n}.0`, version: `${n}.0.0`, pid: Deno.pid, features: ["kvm"] });
  }

  async create(config: Json): Promise<Answer> {
    const top = "The VM could not be created";
    if (this.#config) return err(500, top, "VM is already created");
    if (this.options.fail.has("create")) {
      return err(500, top, "injected failure (CH_DOUBLE_FAIL=create)");
    }
    const full = shapes.withDefaults(shapes.VmConfig, config) as Json;
    full.memory ??= { size: 512 << 20 };
    full.cpus ??= { boot_vcpus: 1, max_vcpus: 1 };
    try {
      new GuestMemory((full.memory as Json).size as number);
    } catch (e) {
      return err(400, top, (e as Error).message);
    }
    const serial = full.serial as Json | undefined;
    if (serial?.mode === "File") {
      if (typeof serial.file !== "string") return err(400, top, "serial mode File needs a file");
      try {
        await Deno.writeFile(serial.file, new Uint8Array(), { append: true, create: true });
      } catch (e) {
        return err(
          500,
          top,
          "Error creating console devices",
          `${serial.file}: ${(e as Error).message}`,
        );
      }
    }
    for (const net of (full.net as Json[] | undefined) ?? []) this.#netFds.set(net, []);
    this.#config = full;
    this.#state = "Created";
    return ok();
  }

  addNet(net: Json, fds: number[]): Answer {
    const top = "The network device could not be added to the VM";
    if (!this.#config) return err(404, top, "VM is not created");
    const full = shapes.withDefaults(shapes.NetConfig, net) as Json;
    if (fds.length > 0 && full.num_queues !== 2 * fds.length) {
      return err(
        400,
        top,
        "Failed to validate config",
        `Number of queues (${full.num_queues}) must be 2 × the number of fds passed (${fds.length})`,
      );
    }
    if (typeof full.mac === "string" && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(full.mac)) {
      return err(400, "Failed to deserialize JSON", `invalid MAC address ${full.mac}`);
    }
    full.mac ??= "52:54:00:" +
      [0, 0, 0].map(() => Math.floor(Math.random() * 256).toString(16).padStart(2, "0")).join(":");
    if (fds.length > 0) full.fds = [...fds];
    const nets = (this.#config.net ??= []) as Json[];
    if (typeof full.id === "string" && this.#usedIds().has(full.id)) {
      return err(409, top, "Failed to validate config", `Identifier ${full.id} is not unique`);
    }
    nets.push(full);
    this.#netFds.set(full, [...fds]);
    if (this.#state === "Created") return ok();
    // Hot-plug into a booted VM: the id is assigned now.
    full.id ??= this.#nextId("_net");
    return ok({ id: full.id, bdf: `0000:00:${(nets.length + 4).toString(16).padStart(2, "0")}.0` });
  }

  #usedIds(): Set<string> {
    const ids = new Set<string>();
    const cfg = this.#config ?? {};
    for (const list of [cfg.disks, cfg.net]) {
      for (const d of (list as Json[] | undefined) ?? []) {
        if (typeof d.id === "string") ids.add(d.id);
      }
    }
    const vsock = cfg.vsock as Json | undefined;
    if (typeof vsock?.id === "string") ids.add(vsock.id);
    return ids;
  }

  #nextId(prefix: string): string {
    const used = this.#usedIds();
    for (;;) {
      const name = `${prefix}${this.#deviceIdCnt++}`;
      if (!used.has(name)) return name;
    }
  }

  #context(): GuestContext {
    const cfg = this.#config!;
    const serial = cfg.serial as Json | undefined;
    const serialFile = serial?.mode === "File" ? serial.file as string : undefined;
    return {
      disks: ((cfg.disks as Json[] | undefined) ?? []).map((d) => d.path as string),
      cmdline: ((cfg.payload as Json | undefined)?.cmdline as string | undefined) ?? "",
      nets: ((cfg.net as Json[] | undefined) ?? []).map((n) => ({
        id: n.id as string,
        mac: n.mac as string,
      })),
      serial: (line) => {
        if (serialFile) Deno.writeTextFileSync(serialFile, line + "\n", { append: true });
      },
    };
  }

  async #openDevices(top: string): Promise<void> {
    const cfg = this.#config!;
    for (const disk of (cfg.disks as Json[] | undefined) ?? []) {
      const path = disk.path as string;
      try {
        using f = await Deno.open(path, { read: true, write: disk.readonly !== true });
        void f;
      } catch (e) {
        throw new ApiFailure(
          err(
            500,
            top,
            "Error from device manager",
            `Cannot open disk path ${path}: ${(e as Error).message}`,
          ),
        );
      }
    }
    const vsock = cfg.vsock as Json | undefined;
    if (vsock) {
      const path = vsock.socket as string;
      try {
        this.#vsock = Deno.listen({ transport: "unix", path });
        this.#vsockPath = path;
      } catch (e) {
        throw new ApiFailure(
          err(
            500,
            top,
            "Error from device manager",
            `Cannot create virtio-vsock device: bind ${path}: ${(e as Error).message}`,
          ),
        );
      }
      this.#serveVsock(this.#vsock);
    }
  }

  async #serveVsock(listener: Deno.UnixListener): Promise<void> {
    try {
      for await (const conn of listener) this.#vsockConnection(conn).catch(() => conn.close());
    } catch {
      // listener closed
    }
  }

  async #vsockConnection(conn: Deno.UnixConn): Promise<void> {
    // Read "CONNECT <port>\n" byte by byte so nothing past it is consumed.
    let line = "";
    const one = new Uint8Array(1);
    while (!line.endsWith("\n")) {
      const n = await conn.read(one);
      if (n === null || line.length > 64) {
        conn.close();
        return;
      }
      line += String.fromCharCode(one[0]);
    }
    const m = /^CONNECT (\d+)\n$/.exec(line);
    const handler = m && this.#guest ? this.#guest.vsockConnect(Number(m[1])) : undefined;
    if (!handler) {
      conn.close();
      return;
    }
    await conn.write(new TextEncoder().encode(`OK ${this.#hostPort++}\n`));
    handler(conn);
  }

  async boot(): Promise<Answer> {
    const top = "The VM could not boot";
    if (!this.#config) return err(404, top, "VM config is missing");
    if (this.#state !== "Created") return err(500, top, "VM is already created");
    if (this.options.fail.has("boot-exit")) {
      this.options.log("injected failure: exiting during vm.boot (CH_DOUBLE_FAIL=boot-exit)");
      return { exit: 1, silent: true };
    }
    if (this.options.fail.has("boot-error")) {
      return err(500, top, "injected failure (CH_DOUBLE_FAIL=boot-error)");
    }
    const kernel = (this.#config.payload as Json).kernel as string | undefined;
    if (!kernel || !(await exists(kernel))) {
      return err(500, top, "Error loading kernel", `cannot open kernel ${kernel ?? "(none)"}`);
    }
    // Device ids from one counter in creation order: disks, nets, then vsock.
    for (const disk of (this.#config.disks as Json[] | undefined) ?? []) {
      disk.id ??= this.#nextId("_disk");
    }
    for (const net of (this.#config.net as Json[] | undefined) ?? []) {
      net.id ??= this.#nextId("_net");
    }
    const vsock = this.#config.vsock as Json | undefined;
    if (vsock) vsock.id ??= this.#nextId("_vsock");
    await this.#openDevices(top);
    this.#memory = new GuestMemory((this.#config.memory as Json).size as number);
    this.#memory.writeBootHeader();
    this.#guest = this.options.guestFactory();
    await this.#guest.boot(this.#context());
    this.#startNetStacks();
    this.#state = "Running";
    return ok();
  }

  info(): Answer {
    if (!this.#config) return err(404, "The VM info is not available", "VM is not created");
    return ok({
      config: this.#config,
      state: this.#state,
      memory_actual_size: (this.#config.memory as Json).size,
    });
  }

  pause(): Answer {
    return this.#pauseOrResume("Paused", "The VM could not be paused", "Cannot pause VM");
  }

  resume(): Answer {
    return this.#pauseOrResume("Running", "The VM could not resume", "Cannot resume VM");
  }

  /** vm.pause / vm.resume: Running ⇄ Paused, with CH's error texts for any other state. */
  #pauseOrResume(to: "Paused" | "Running", top: string, cannot: string): Answer {
    if (this.#state === undefined || this.#state === "Created") {
      return err(500, top, "VM is not running");
    }
    const from = to === "Paused" ? "Running" : "Paused";
    if (this.#state !== from) {
      return err(
        500,
        top,
        cannot,
        `Invalid transition: InvalidStateTransition(${this.#state}, ${to})`,
      );
    }
    if (to === "Paused") this.#guest?.pause();
    else this.#guest?.resume();
    this.#state = to;
    return ok();
  }

  async snapshot(body: Json): Promise<Answer> {
    const top = "The VM could not be snapshotted";
    if (this.#state === undefined || this.#state === "Created" || !this.#memory) {
      return err(500, top, "VM is not running");
    }
    const restore = this.#restore;
    // OnDemand: the VMM still reads the restore source; it must be where it was.
    if (restore?.mode === "OnDemand" && (restore.fillPending || this.#deltaOnly())) {
      const gone = await this.#sourceGone(restore);
      if (gone) {
        this.options.log(`fatal: on-demand restore source ${gone}; a real VMM would fault`);
        return { exit: 1, silent: true };
      }
    }
    if (restore?.fillPending) {
      if (--restore.refusalsLeft <= 0) this.#completeFill();
      return err(500, top, "VM on-demand memory restore is still in progress");
    }
    if (this.#state !== "Paused") {
      return err(500, top, "Cannot snapshot VM", "Trying to snapshot while VM is running");
    }
    const dir = fileUrlPath(body.destination_url as string, "Cannot send VM snapshot", top);
    const stat = await Deno.stat(dir).catch(() => undefined);
    if (!stat?.isDirectory) {
      return err(
        500,
        top,
        "Cannot send VM snapshot",
        `destination ${dir} is not an existing directory`,
      );
    }
    const create = async (name: string, data: string | undefined, write?: () => void) => {
      try {
        if (write) write();
        else await Deno.writeTextFile(`${dir}/${name}`, data!, { createNew: true });
      } catch (e) {
        throw new ApiFailure(
          err(
            500,
            top,
            "Cannot send VM snapshot",
            `Error creating VM ${name} snapshot file: ${(e as Error).message}`,
          ),
        );
      }
    };
    await create("config.json", JSON.stringify(this.#snapshotConfig()));
    if (this.options.fail.has("snapshot-exit")) return { exit: 1, silent: true };
    if (this.options.fail.has("snapshot")) {
      return err(500, top, "Cannot send VM snapshot", "injected failure (CH_DOUBLE_FAIL=snapshot)");
    }
    const guestState = this.#guest!.snapshot();
    const digest = this.#memory.writeGuestState(guestState);
    const disks = [];
    for (const disk of (this.#config!.disks as Json[] | undefined) ?? []) {
      if (disk.readonly === true) continue;
      disks.push({ id: disk.id, path: disk.path, sha256: diskDigest(disk.path as string) });
    }
    const state = {
      snapshot_data: {
        double: {
          version: this.options.version,
          device_id_cnt: this.#deviceIdCnt,
          guest_state_sha256: digest,
          guest_state_len: guestState.length,
          disks,
          restored_from: restore ? { mode: restore.mode, delta: this.#deltaOnly() } : undefined,
        },
      },
      snapshots: {},
    };
    await create("state.json", JSON.stringify(state));
    const memory = this.#memory;
    const pages = this.#deltaOnly() ? memory.touched : memory.pages.keys();
    await create(
      "memory-ranges",
      undefined,
      () => memory.writeRanges(`${dir}/memory-ranges`, pages),
    );
    return ok();
  }

  /** v52 after an OnDemand restore: snapshots hold only pages touched since the restore. */
  #deltaOnly(): boolean {
    return this.#restore?.mode === "OnDemand" && this.options.version <= 52;
  }

  /** Why the OnDemand source cannot be read any more, or undefined while it is in place. */
  async #sourceGone(restore: RestoreInfo): Promise<string | undefined> {
    const stat = await Deno.stat(restore.memoryPath).catch(() => undefined);
    if (!stat) return `${restore.memoryPath} was removed while the VM demand-pages from it`;
    if (stat.size !== this.#memory!.size) {
      return `${restore.memoryPath} changed size while the VM demand-pages from it`;
    }
    return undefined;
  }

  #completeFill(): void {
    const restore = this.#restore!;
    this.#memory!.loadFrom(restore.memoryPath);
    restore.fillPending = false;
    this.options.log("on-demand memory fill completed");
  }

  /** The VmConfig as CH writes it into config.json: received fd numbers as `fds`. */
  #snapshotConfig(): Json {
    const cfg = structuredClone(this.#config!);
    for (const [i, net] of ((this.#config!.net as Json[] | undefined) ?? []).entries()) {
      const fds = this.#netFds.get(net) ?? [];
      if (fds.length > 0) (cfg.net as Json[])[i].fds = fds;
    }
    return cfg;
  }

  async restore(body: Json, fds: number[]): Promise<Answer> {
    const top = "The VM could not be restored";
    const netFds = (body.net_fds as { id: string; num_fds?: number }[] | undefined) ?? [];
    const expected = netFds.reduce((n, c) => n + (c.num_fds ?? 0), 0);
    if (expected !== fds.length) {
      this.options.log(`Expected ${expected} FDs in VmRestore request, received ${fds.length}`);
      return badRequest();
    }
    if (this.#config || this.#state) return err(500, top, "VM is already created");
    const mode = (body.memory_restore_mode as "Copy" | "OnDemand" | undefined) ?? "Copy";
    if (mode === "OnDemand" && body.prefault === true) {
      return err(
        400,
        top,
        "Failed to validate config",
        "'prefault' cannot be combined with 'memory_restore_mode=ondemand'",
      );
    }
    const dir = fileUrlPath(body.source_url as string, "Invalid restore source URL", top);
    const read = async (name: string) => {
      try {
        return JSON.parse(await Deno.readTextFile(`${dir}/${name}`)) as Json;
      } catch (e) {
        throw new ApiFailure(
          err(500, top, "Cannot restore VM", `Error reading ${name}: ${(e as Error).message}`),
        );
      }
    };
    const config = await read("config.json");
    // Every fd-backed net needs a net_fds entry with the same number of fds.
    const byId = new Map<string, number>();
    for (const n of netFds) {
      if (byId.has(n.id)) {
        return err(409, top, "Failed to validate config", `Identifier ${n.id} is not unique`);
      }
      byId.set(n.id, n.num_fds ?? 0);
    }
    for (const net of (config.net as Json[] | undefined) ?? []) {
      const old = net.fds as number[] | undefined;
      if (!old) continue;
      const given = byId.get(net.id as string);
      if (given === undefined) {
        return err(
          400,
          top,
          "Failed to validate config",
          `Net id ${net.id} is associated with FDs and is required`,
        );
      }
      if (given !== old.length) {
        return err(
          400,
          top,
          "Failed to validate config",
          `Number of Net FDs passed for '${net.id}' during Restore: ${given}. Expected: ${old.length}`,
        );
      }
    }
    if (this.options.fail.has("restore-exit")) return { exit: 1, silent: true };
    const state = await read("state.json");
    const info = (state.snapshot_data as Json | undefined)?.double as Json | undefined;
    if (!info) {
      return err(500, top, "Cannot restore VM", "state.json has no snapshot data of this VMM");
    }
    const size = (config.memory as Json).size as number;
    const memoryPath = `${dir}/memory-ranges`;
    const memStat = await Deno.stat(memoryPath).catch(() => undefined);
    if (!memStat) return err(500, top, "Cannot restore VM", `missing ${memoryPath}`);
    if (memStat.size !== size) {
      return err(
        500,
        top,
        "Cannot restore VM",
        `memory-ranges is ${memStat.size} bytes, expected ${size} (truncated image)`,
      );
    }
    const memory = new GuestMemory(size);
    const statePages = (index: number) =>
      index === 0 ||
      (index * PAGE >= STATE_OFFSET &&
        index * PAGE < STATE_OFFSET + 64 * PAGE + (info.guest_state_len as number));
    memory.loadFrom(memoryPath, mode === "OnDemand" ? statePages : undefined);
    const guestState = memory.readGuestState(info.guest_state_sha256 as string);
    if (typeof guestState === "string") return err(500, top, "Cannot restore VM", guestState);
    // Writable disks are checked at the path config.json names now (it may have been repointed).
    const configDisks = (config.disks as Json[] | undefined) ?? [];
    for (const d of (info.disks as { id: string; sha256: string }[]) ?? []) {
      const path = configDisks.find((c) => c.id === d.id)?.path as string | undefined;
      if (!path) {
        return err(500, top, "Cannot restore VM", `disk ${d.id} is missing from config.json`);
      }
      let digest: string;
      try {
        digest = diskDigest(path);
      } catch (e) {
        return err(500, top, "Cannot restore VM", `disk ${path}: ${(e as Error).message}`);
      }
      if (digest !== d.sha256) {
        return err(
          500,
          top,
          "Cannot restore VM",
          `disk ${path} (${d.id}) differs from its content at snapshot time`,
        );
      }
    }
    // Nets get the fds just received, in net_fds order.
    let at = 0;
    const given = new Map<string, number[]>();
    for (const n of netFds) {
      given.set(n.id, fds.slice(at, at + (n.num_fds ?? 0)));
      at += n.num_fds ?? 0;
    }
    for (const net of (config.net as Json[] | undefined) ?? []) {
      if (!net.fds) continue;
      const mine = given.get(net.id as string)!;
      net.fds = [...mine];
      this.#netFds.set(net, mine);
    }
    this.#config = config;
    this.#deviceIdCnt = info.device_id_cnt as number;
    const serial = config.serial as Json | undefined;
    if (serial?.mode === "File") {
      try {
        await Deno.writeFile(serial.file as string, new Uint8Array(), {
          append: true,
          create: true,
        });
      } catch (e) {
        this.#config = undefined;
        return err(
          500,
          top,
          "Error creating console devices",
          `${serial.file}: ${(e as Error).message}`,
        );
      }
    }
    try {
      await this.#openDevices(top);
    } catch (e) {
      this.#config = undefined;
      throw e;
    }
    this.#memory = memory;
    this.#restore = {
      mode,
      memoryPath,
      fillPending: mode === "OnDemand" && this.options.version >= 53,
      refusalsLeft: this.options.fillRefusals,
    };
    if (this.#restore.fillPending && this.options.fillRefusals <= 0) this.#completeFill();
    this.#guest = this.options.guestFactory();
    await this.#guest.restore(this.#context(), guestState);
    this.#startNetStacks();
    if (body.resume === true) {
      this.#state = "Running";
    } else {
      this.#guest.pause();
      this.#state = "Paused";
    }
    return ok();
  }

  async shutdownVm(): Promise<Answer> {
    const top = "The VM could not shutdown";
    if (this.#state !== "Running" && this.#state !== "Paused") {
      return err(500, top, "VM is not running");
    }
    await this.#stopGuest();
    this.#state = "Shutdown";
    return ok();
  }

  #startNetStacks(): void {
    if (!this.options.netStack) return;
    for (const [net, fds] of this.#netFds) {
      if (fds.length === 0 || typeof net.mac !== "string") continue;
      this.#netStacks.push(new NetStack(fds[0], net.mac, () => this.#vsockPath, this.options.log));
    }
  }

  async #stopGuest(): Promise<void> {
    this.#netStacks.forEach((s) => s.close());
    this.#netStacks = [];
    await this.#guest?.shutdown();
    this.#guest = undefined;
    if (this.#vsock) {
      this.#vsock.close();
      this.#vsock = undefined;
      await Deno.remove(this.#vsockPath!).catch(() => {});
    }
  }

  async shutdownVmm(): Promise<Answer> {
    await this.#stopGuest();
    if (this.options.fail.has("vmm-shutdown-eof")) return { exit: 0, silent: true };
    return { exit: 0, silent: false, status: 200 };
  }

  /** Clean exit on a signal: what vmm.shutdown does without an answer. */
  async cleanup(): Promise<void> {
    await this.#stopGuest();
  }
}

interface Route {
  method: "GET" | "PUT";
  body: "none" | shapes.ObjectShape;
  run(vmm: Vmm, body: Json, fds: number[]): Answer | Promise<Answer>;
}

const ROUTES: Record<string, Route> = {
  "/api/v1/vmm.ping": { method: "GET", body: "none", run: (v) => v.ping() },
  "/api/v1/vmm.shutdown": { method: "PUT", body: "none", run: (v) => v.shutdownVmm() },
  "/api/v1/vm.create": { method: "PUT", body: shapes.VmConfig, run: (v, b) => v.create(b) },
  "/api/v1/vm.add-net": {
    method: "PUT",
    body: shapes.NetConfig,
    run: (v, b, fds) => v.addNet(b, fds),
  },
  "/api/v1/vm.boot": { method: "PUT", body: "none", run: (v) => v.boot() },
  "/api/v1/vm.info": { method: "GET", body: "none", run: (v) => v.info() },
  "/api/v1/vm.pause": { method: "PUT", body: "none", run: (v) => v.pause() },
  "/api/v1/vm.resume": { method: "PUT", body: "none", run: (v) => v.resume() },
  "/api/v1/vm.snapshot": {
    method: "PUT",
    body: shapes.VmSnapshotConfig,
    run: (v, b) => v.snapshot(b),
  },
  "/api/v1/vm.restore": {
    method: "PUT",
    body: shapes.RestoreConfig,
    run: (v, b, fds) => v.restore(b, fds),
  },
  "/api/v1/vm.shutdown": { method: "PUT", body: "none", run: (v) => v.shutdownVm() },
};
