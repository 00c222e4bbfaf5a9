/**
 * The micro-VM {@link WorkloadRuntime}: each actor runs as a cloud-hypervisor VM with a kata
 * guest; Checkpoint snapshots it and tears it down, Restore resumes it from a snapshot.
 *
 * Each RPC reads as a list of named steps: Run's in ./run.ts, Restore's in ./restore.ts, the
 * Checkpoint capture's in ./checkpoint.ts; this module holds the frame around them (step timing,
 * unwind, outcome log), the steps Run and Restore share, supervision and teardown. The I/O of
 * every step lives in its subsystem (lib/ch, lib/kata, lib/net, lib/rootfs, lib/sparse). Every
 * step that creates
 * something registers its undo on an {@link Unwind} stack: a failure or abort unwinds all of it
 * (VMM killed and reaped, network removed, agent closed, VM run directory removed), so the
 * worker stays available. Step durations are logged with the RPC's outcome.
 *
 * Work that must not be torn by a cancelled RPC finishes detached and retries converge: the
 * rootfs build (lib/rootfs joins builds in flight), and the checkpoint's capture (pause,
 * snapshot, merge, golden copy), which a retried Checkpoint joins.
 *
 * The activation is persisted (./state.ts) so a restarted worker can checkpoint or tear down a
 * VM it did not start, and {@link MicroVmRuntime.startup} reaps what a dead predecessor left.
 * The capture records its phase there too, so a retry or a restarted worker goes on from it.
 *
 * A live activation's VMM is supervised: an exit this process did not cause is logged, its
 * network removed and the death persisted; the next Checkpoint answers why and frees the worker.
 *
 * @module
 */
import { join } from "node:path";
import type {
  CheckpointRequest,
  ContainerSpec,
  RestoreRequest,
  RunRequest,
  WorkerInfo,
  WorkloadRequest,
  WorkloadRuntime,
} from "../api/runtime.ts";
import { RuntimeError } from "../api/runtime.ts";
import { ChClient } from "../ch/client.ts";
import { describeStatus, identityOf, killByIdentity, VmmProcess } from "../ch/vmm_process.ts";
import type { AgentClient } from "../kata/agent_client.ts";
import { connectAgent } from "../kata/connect.ts";
import type { ActorLogWriter } from "../log/actorlog.ts";
import type { Logger } from "../log/logger.ts";
import {
  type ActorNetworkEnv,
  cleanupActorNetwork,
  closeTapFds,
  ensureInteriorNetns,
  setupActorNetwork,
} from "../net/actor.ts";
import { type CommandRunner, ProcessRunner } from "../net/runner.ts";
import { checkNetworkTools } from "../net/tools.ts";
import { buildImage } from "../rootfs/build.ts";
import { logBuildProgress, ROOTFS_READY_MSG } from "./build_log.ts";
import type { MergeHooks } from "../sparse/merge.ts";
import { type Assets, resolveAssets } from "./assets.ts";
import { captureCheckpoint } from "./checkpoint.ts";
import { agentContainerId, goldenDiskOf, rootfsDiskOf, type VmDir, vmDirOf } from "./layout.ts";
import type { MemoryModeFlag } from "./memory_mode.ts";
import { type Prober, tcpProber, waitReady } from "./readiness.ts";
import { bootRestore } from "./restore.ts";
import { bootRun } from "./run.ts";
import {
  type ActivationState,
  type CapturePhase,
  clearState,
  type ContainerState,
  isVmmAlive,
  loadCurrentState,
  loadState,
  saveState,
  STATE_VERSION,
} from "./state.ts";
import {
  type Activation,
  type Booted,
  removeIfPresent,
  type RuntimeContext,
  Steps,
  type StepTimes,
  waitFor,
} from "./steps.ts";
import { Unwind } from "./unwind.ts";

export interface MicroVmRuntimeOptions {
  /** The worker this runtime serves (for startup work before any RPC). */
  worker: WorkerInfo;
  logger: Logger;
  /** `serve --cloud-hypervisor-binary`: used when the request names no "cloud-hypervisor". */
  chBinary?: string;
  /** `serve --kata-config`: used when the request names no "kata-config". */
  kataConfig?: string;
  /** `serve --memory-restore-mode` (default auto). */
  memoryRestoreMode?: MemoryModeFlag;
  /** `serve --kata-debug`: agent debug logging in the guest. */
  kataDebug?: boolean;
  /** The pod netns by name under /run/netns; absent: the netns this process runs in. */
  podNetns?: string;
  /** Runs ip/tc/nft (default: a {@link ProcessRunner}, whose `spawned` counts processes). */
  runner?: CommandRunner;
  /** The pod's resolv.conf: guest /etc/resolv.conf and the sandbox DNS (default /etc/resolv.conf). */
  resolvConf?: string;
  /** Readiness prober (default: HTTP over TCP to 169.254.17.2 from this netns). */
  prober?: Prober;
  /** Extra environment for the VMM process (read at each launch). */
  vmmEnv?: () => Record<string, string>;
  /** Limit for reaching the agent after boot/restore (default 60 s; the RPC deadline also applies). */
  agentDialTimeoutMs?: number;
  /** Limit for each VMM API call (default 30 s; snapshot and restore get 10 min). */
  vmmCallTimeoutMs?: number;
  /**
   * `serve --readyz-timeout`: how long readiness is polled per container when the RPC has no
   * earlier deadline (default {@link DEFAULT_READYZ_TIMEOUT_MS}).
   */
  readyzTimeoutMs?: number;
  /**
   * Test seam: called once the checkpoint capture has persisted each phase (see
   * {@link CapturePhase}); throwing fails the capture right there, as a crash would stop it.
   */
  onCapturePhase?: (phase: CapturePhase) => void | Promise<void>;
  /** Test seam: hooks of the OnDemand merge (lib/sparse/merge.ts), e.g. to stop it midway. */
  mergeHooks?: MergeHooks;
}

/** Readiness limit when neither the RPC nor `--readyz-timeout` sets one: 5 minutes. */
export const DEFAULT_READYZ_TIMEOUT_MS = 5 * 60_000;

/** The micro-VM runtime. */
export class MicroVmRuntime implements WorkloadRuntime {
  readonly #opts: MicroVmRuntimeOptions;
  readonly #log: Logger;
  readonly #runner: CommandRunner;
  readonly #prober: Prober;
  /** Tells this instance's activations from those a restarted worker adopted. */
  readonly #id = crypto.randomUUID();
  #active: Activation | undefined;
  /** What the steps in run.ts, restore.ts and checkpoint.ts use of this runtime. */
  readonly #context: RuntimeContext;

  constructor(options: MicroVmRuntimeOptions) {
    this.#opts = options;
    this.#log = options.logger.with({ component: "microvm" });
    this.#runner = options.runner ?? new ProcessRunner();
    this.#prober = options.prober ?? tcpProber;
    this.#context = {
      opts: options,
      log: this.#log,
      assets: (req, needBoot) => this.#assets(req, needBoot),
      vmDir: (undo) => this.#vmDir(undo),
      buildDisks: (req, log, signal) => this.#buildDisks(req, log, signal),
      setupNet: (undo, queuePairs) => this.#setupNet(undo, queuePairs),
      launch: (assets, vm, undo, actorId, signal) =>
        this.#launch(assets, vm, undo, actorId, signal),
      record: (req, vm, vmm, undo, extra) => this.#record(req, vm, vmm, undo, extra),
      dialAgent: (vm, undo, signal, log) => this.#dialAgent(vm, undo, signal, log),
    };
  }

  /** The command runner (its `spawned` counts ip/tc/nft processes when it is a ProcessRunner). */
  get runner(): CommandRunner {
    return this.#runner;
  }

  /** The running activation's persisted state (tests, diagnostics). */
  get activeState(): ActivationState | undefined {
    return this.#active?.state;
  }

  #netEnv(): ActorNetworkEnv {
    return {
      interiorNetns: this.#opts.worker.netnsName,
      podNetns: this.#opts.podNetns,
      runner: this.#runner,
      logger: this.#log,
    };
  }

  /**
   * Startup work of `serve`: checks ip/tc/nft (naming the package to install), creates the
   * interior netns, and reaps an activation a dead predecessor left (its VMM, identified by pid
   * and start time, the network, the VM run directory and the state). A predecessor still alive
   * (same pid and start time) is left alone.
   */
  async startup(): Promise<void> {
    checkNetworkTools();
    await ensureInteriorNetns(this.#opts.worker.netnsName, this.#runner);
    const leftover = await loadCurrentState(this.#opts.worker.ateomDir).catch((e) => {
      this.#log.warn("unreadable activation state; ignoring it", { err: (e as Error).message });
      return undefined;
    });
    if (!leftover) return;
    if (await isVmmAlive(leftover.worker)) {
      // Another instance still serves this pod (startServer then refuses its live socket).
      this.#log.warn("the worker that started the recorded VM is still running; not reaping it", {
        worker_pid: leftover.worker.pid,
        vmm_pid: leftover.vmm.pid,
      });
      return;
    }
    const killed = await killByIdentity(leftover.vmm);
    this.#log.warn("reaped the activation of a previous worker instance", {
      actor: leftover.actor.id,
      vmm_pid: leftover.vmm.pid,
      vmm: killed,
    });
    await this.#cleanupHost(leftover.vmDir, leftover.actorDir);
  }

  /** Tears down the running activation, if any (worker shutdown: the pod goes away). */
  async close(): Promise<void> {
    const act = this.#active;
    if (!act) return;
    this.#active = undefined;
    await this.#teardown(act, this.#log);
  }

  // ---- RunWorkload ----

  async run(req: RunRequest, signal: AbortSignal): Promise<void> {
    await this.#activate(
      "RunWorkload",
      req,
      signal,
      (steps, undo, log) => bootRun(this.#context, req, steps, undo, log, signal),
    );
  }

  /**
   * The frame of Run and Restore: named steps, the unwind stack and the outcome log around
   * `boot` (which brings the VM up to a connected agent), then log forwarding and readiness;
   * after that the activation is live and its VMM supervised. Any failure unwinds everything.
   */
  async #activate(
    rpc: "RunWorkload" | "RestoreWorkload",
    req: RunRequest,
    signal: AbortSignal,
    boot: (steps: Steps, undo: Unwind, log: Logger) => Promise<Booted>,
  ): Promise<void> {
    const log = this.#log.with({ rpc, actor: req.actor.id });
    const steps = new Steps(log, signal);
    const undo = new Unwind();
    const started = performance.now();
    try {
      const { act, vm, outcome } = await boot(steps, undo, log);
      this.#forwardLogs(act, req.actorLog, req.containers, log);
      undo.push("log forwarding", () => this.#stopLogs(act));
      await steps.run(
        "waiting for readiness",
        () => this.#ready(req.containers, vm, signal, act.vmm),
      );
      undo.commit();
      this.#active = act;
      this.#supervise(act);
      log.info(rpc === "RunWorkload" ? "actor running" : "actor restored", {
        duration_ms: Math.round(performance.now() - started),
        steps: steps.times,
        ...outcome,
      });
    } catch (e) {
      await this.#unwind(undo, log, e, steps.times);
      throw e;
    }
  }

  // ---- CheckpointWorkload ----

  async checkpoint(
    req: CheckpointRequest,
    signal: AbortSignal,
  ): Promise<{ snapshotFiles: string[] }> {
    if (req.scope === "data") {
      throw new RuntimeError(
        "UNIMPLEMENTED",
        "CheckpointWorkload with scope DATA is not supported by the micro-VM runtime: it snapshots the whole VM; use scope FULL",
      );
    }
    const log = this.#log.with({ rpc: "CheckpointWorkload", actor: req.actor.id });
    const steps = new Steps(log, signal);
    const started = performance.now();
    const act = await steps.run("finding the running VM", () => this.#activationFor(req, log));
    if (!act.capture) {
      act.capture = captureCheckpoint(this.#opts, act, req, log);
      // A failed capture may be retried from scratch by the next Checkpoint.
      act.capture.catch(() => act.capture = undefined);
    } else {
      log.info("joining the checkpoint capture already under way");
    }
    const snapshotFiles = await steps.run("capturing the snapshot", async () => {
      try {
        return await waitFor(act.capture!, signal);
      } catch (e) {
        // A capture cut short by the VMM's death answers that, and frees the worker.
        throw (await this.#deathOf(act, signal)) ?? e;
      }
    });
    await steps.run("tearing down the VM", async () => {
      this.#active = undefined;
      await this.#teardown(act, log);
    });
    log.info("actor checkpointed", {
      duration_ms: Math.round(performance.now() - started),
      steps: steps.times,
      snapshot_files: snapshotFiles,
    });
    return { snapshotFiles };
  }

  // ---- RestoreWorkload ----

  async restore(req: RestoreRequest, signal: AbortSignal): Promise<void> {
    if (req.scope === "data") {
      throw new RuntimeError(
        "UNIMPLEMENTED",
        "RestoreWorkload with scope DATA is not supported by the micro-VM runtime: it restores whole VM snapshots; use scope FULL",
      );
    }
    await this.#activate(
      "RestoreWorkload",
      req,
      signal,
      (steps, undo, log) => bootRestore(this.#context, req, steps, undo, log, signal),
    );
  }

  // ---- steps Run and Restore share ----

  #assets(req: WorkloadRequest, needBoot: boolean): Assets {
    if (this.#active) {
      throw new RuntimeError(
        "FAILED_PRECONDITION",
        `actor ${this.#active.state.actor.id} is still running on this worker; checkpoint it first`,
      );
    }
    return resolveAssets(req.runtimeAssetPaths, this.#opts, needBoot);
  }

  async #vmDir(undo: Unwind): Promise<VmDir> {
    const vm = vmDirOf(this.#opts.worker.ateomDir);
    // A SIGKILLed VMM leaves its sockets behind, and CH refuses to bind over them.
    await removeIfPresent(vm.dir);
    await Deno.mkdir(vm.dir, { recursive: true, mode: 0o700 });
    undo.push("VM run directory", () => removeIfPresent(vm.dir));
    return vm;
  }

  async #buildDisks(req: WorkloadRequest, log: Logger, signal: AbortSignal): Promise<void> {
    for (const c of req.containers) {
      const disk = rootfsDiskOf(req.paths.actorDir, c.name);
      log.info("building rootfs disk", { container: c.name, disk });
      const result = await buildImage(join(c.bundleDir, "rootfs"), disk, {
        resolvConf: this.#opts.resolvConf ?? "/etc/resolv.conf",
        signal,
        onProgress: logBuildProgress(log, c.name),
      });
      log.info(ROOTFS_READY_MSG, { container: c.name, outcome: result.outcome });
    }
  }

  async #setupNet(undo: Unwind, queuePairs: number) {
    const env = this.#netEnv();
    undo.push("actor network", () => cleanupActorNetwork(env));
    const net = await setupActorNetwork(env, { queuePairs });
    undo.push("tap fds", () => closeTapFds(net.tapFds.splice(0)));
    return net;
  }

  async #launch(
    assets: Assets,
    vm: VmDir,
    undo: Unwind,
    actorId: string,
    signal: AbortSignal,
  ): Promise<VmmProcess> {
    const vmm = await VmmProcess.launch({
      binary: assets.chBinary,
      apiSocket: vm.apiSocket,
      // The VMM outlives this RPC: its lines carry the actor, not the RPC.
      logger: this.#log.with({ actor: actorId }),
      signal,
      env: this.#opts.vmmEnv?.(),
      callTimeoutMs: this.#opts.vmmCallTimeoutMs,
    });
    undo.push("VMM process", () => vmm.kill());
    return vmm;
  }

  async #stateOf(
    req: WorkloadRequest,
    vm: VmDir,
    vmm: VmmProcess,
    extra: Pick<ActivationState, "baseId" | "restoreSource" | "memoryMode" | "atCheckpoint">,
  ): Promise<ActivationState> {
    const { startTime } = await identityOf(vmm.pid);
    const worker = await identityOf(Deno.pid);
    const containers: ContainerState[] = req.containers.map((c) => ({
      name: c.name,
      agentId: agentContainerId(c.name),
      disk: rootfsDiskOf(req.paths.actorDir, c.name),
      golden: goldenDiskOf(req.paths.actorDir, c.name),
    }));
    return {
      version: STATE_VERSION,
      podUid: this.#opts.worker.podUid,
      actor: req.actor,
      actorDir: req.paths.actorDir,
      vmm: { pid: vmm.pid, startTime, apiSocket: vm.apiSocket },
      worker,
      vsockSocket: vm.vsockSocket,
      vmDir: vm.dir,
      chVersion: vmm.version.version,
      chMajor: vmm.version.major,
      containers,
      owner: this.#id,
      ...extra,
    };
  }

  /** Persists the activation (VMM identity, paths, lineage); the undo removes it. */
  async #record(
    req: WorkloadRequest,
    vm: VmDir,
    vmm: VmmProcess,
    undo: Unwind,
    extra: Pick<ActivationState, "baseId" | "restoreSource" | "memoryMode" | "atCheckpoint">,
  ): Promise<ActivationState> {
    const state = await this.#stateOf(req, vm, vmm, extra);
    undo.push("activation state", () => clearState(this.#opts.worker.ateomDir, state.actorDir));
    await saveState(this.#opts.worker.ateomDir, state);
    return state;
  }

  async #dialAgent(
    vm: VmDir,
    undo: Unwind,
    signal: AbortSignal,
    log: Logger,
  ): Promise<AgentClient> {
    let agent: AgentClient;
    try {
      agent = await connectAgent(vm.vsockSocket, {
        deadlineMs: this.#opts.agentDialTimeoutMs ?? 60_000,
        signal,
      });
    } catch (e) {
      const serial = await Deno.readTextFile(vm.serialLog).catch(() => "");
      log.error("kata agent unreachable; guest serial tail", { serial: serial.slice(-3000) });
      throw e;
    }
    undo.push("agent connection", () => agent.close());
    return agent;
  }

  #forwardLogs(
    act: Activation,
    actorLog: ActorLogWriter,
    containers: ContainerSpec[],
    log: Logger,
  ): void {
    const agent = act.agent;
    if (!agent) return;
    const stop = new AbortController();
    const pumps = containers.flatMap((c) =>
      (["stdout", "stderr"] as const).map((stream) =>
        actorLog.pipe(
          c.name,
          agent.output(agentContainerId(c.name), stream, { signal: stop.signal }),
        ).catch((e) =>
          log.warn("actor log forwarding stopped", {
            container: c.name,
            stream,
            err: (e as Error).message,
          })
        )
      )
    );
    act.logs = { stop, done: Promise.all(pumps) };
  }

  async #stopLogs(act: Activation): Promise<void> {
    act.logs?.stop.abort();
    act.agent?.close();
    await act.logs?.done;
    act.logs = undefined;
    act.agent = undefined;
  }

  async #ready(
    containers: ContainerSpec[],
    vm: VmDir,
    signal: AbortSignal,
    vmm?: VmmProcess,
  ): Promise<void> {
    const limitMs = this.#opts.readyzTimeoutMs ?? DEFAULT_READYZ_TIMEOUT_MS;
    // A VMM that exits ends the wait at once instead of at the limit.
    const gone = new AbortController();
    vmm?.exited.then((s) => gone.abort(`cloud-hypervisor exited (${describeStatus(s)})`));
    for (const c of containers) {
      if (!c.readyz) continue;
      await waitReady(c.name, c.readyz, vm.vsockSocket, this.#prober, signal, {
        limitMs,
        vmGone: gone.signal,
      });
    }
  }

  /** The activation of `req.actor`: the one this process runs, or one adopted from its state. */
  async #activationFor(req: CheckpointRequest, log: Logger): Promise<Activation> {
    const act = this.#active;
    if (act) {
      if (act.state.actor.id !== req.actor.id) {
        throw new RuntimeError(
          "NOT_FOUND",
          `actor ${req.actor.id} is not running here (running: ${act.state.actor.id})`,
        );
      }
      // A VMM that just exited: let the supervisor record it first.
      if (act.vmm?.exitStatus !== undefined) await act.exitHandled;
      if (act.state.dead) {
        this.#active = undefined;
        throw await this.#releaseDead(act.state);
      }
      return act;
    }
    const state = await loadState(req.paths.actorDir);
    if (state?.dead) throw await this.#releaseDead(state);
    if (!state || !(await isVmmAlive(state.vmm))) {
      throw new RuntimeError(
        "NOT_FOUND",
        `no VM of actor ${req.actor.id} is running on this worker (no live VMM recorded in ${req.paths.actorDir})`,
      );
    }
    log.warn("adopting a VM this process did not start", {
      vmm_pid: state.vmm.pid,
      capture_phase: state.capture?.phase,
    });
    // Recorded as ours first: a previous owner still around then leaves the VM alone.
    const adopted: Activation = {
      state: { ...state, owner: this.#id },
      client: new ChClient(state.vmm.apiSocket),
    };
    await saveState(this.#opts.worker.ateomDir, adopted.state);
    this.#active = adopted;
    return adopted;
  }

  /**
   * Watches the VMM of a live activation: an exit this process did not cause (a crash, an OOM
   * kill) ends the activation at once rather than at the next RPC (see {@link #vmmExited}).
   */
  #supervise(act: Activation): void {
    act.exitHandled = act.vmm?.exited.then(async (status) => {
      if (!act.ending) await this.#vmmExited(act, status);
    }).catch((e) =>
      this.#log.error("handling the VMM's exit failed", { err: (e as Error).message })
    );
  }

  /**
   * The VMM of `act` exited on its own: logs an ERROR with its status and the guest serial tail,
   * stops log forwarding and the agent connection, records the death in the persisted state and
   * removes the actor network. The next Checkpoint answers why (see {@link #releaseDead}).
   */
  async #vmmExited(act: Activation, status: Deno.CommandStatus): Promise<void> {
    const log = this.#log.with({ actor: act.state.actor.id });
    const dead = { status: describeStatus(status), at: new Date().toISOString() };
    const serial = await Deno.readTextFile(vmDirOf(this.#opts.worker.ateomDir).serialLog)
      .catch(() => "");
    log.error("the actor's VM exited unexpectedly", {
      vmm_pid: act.state.vmm.pid,
      status: dead.status,
      serial: serial.slice(-3000),
    });
    await this.#stopLogs(act);
    const persisted = await loadState(act.state.actorDir).catch(() => undefined);
    if (persisted?.owner !== this.#id || persisted.vmm.pid !== act.state.vmm.pid) {
      // Another runtime instance adopted the VM (and stopped it): the activation is its own.
      log.warn("the activation was taken over by another worker instance; forgetting it");
      if (this.#active === act) this.#active = undefined;
      return;
    }
    await cleanupActorNetwork(this.#netEnv()).catch((e) =>
      log.error("actor network cleanup failed", { err: e.message })
    );
    act.state = { ...act.state, dead };
    await saveState(this.#opts.worker.ateomDir, act.state);
    log.warn("recorded the activation as dead; the next Checkpoint releases the worker", {
      ...dead,
    });
  }

  /**
   * After a failed capture: when `act`'s VMM is no longer running, waits for the supervisor to
   * record the exit and returns the error of {@link #releaseDead}; else undefined.
   */
  async #deathOf(act: Activation, signal: AbortSignal): Promise<RuntimeError | undefined> {
    if (!act.vmm || signal.aborted || (await isVmmAlive(act.state.vmm))) return undefined;
    await act.exitHandled;
    if (!act.state.dead) return undefined;
    if (this.#active === act) this.#active = undefined;
    return await this.#releaseDead(act.state);
  }

  /** Removes what is left of a dead activation; returns the error its Checkpoint answers. */
  async #releaseDead(state: ActivationState): Promise<RuntimeError> {
    await this.#cleanupHost(state.vmDir, state.actorDir);
    return new RuntimeError(
      "FAILED_PRECONDITION",
      `the VM of actor ${state.actor.id} exited (${state.dead?.status}) at ${state.dead?.at}; it cannot be checkpointed; run or restore it again`,
      { actorGone: true },
    );
  }

  /** Stops everything an activation runs; failures are logged, never thrown. */
  async #teardown(act: Activation, log: Logger): Promise<void> {
    act.ending = true;
    await this.#stopLogs(act);
    const quick = { timeoutMs: 5000 };
    await act.client.shutdown(quick).catch((e) =>
      log.debug("vm.shutdown failed (continuing)", { err: e.message })
    );
    await act.client.shutdownVmm(quick).catch((e) =>
      log.debug("vmm.shutdown failed (continuing)", { err: e.message })
    );
    if (act.vmm) {
      await act.vmm.kill();
      // An exit noticed before this teardown is still being recorded: clean up after it.
      await act.exitHandled;
    } else {
      await killByIdentity(act.state.vmm).catch((e) =>
        log.error("killing the adopted VMM failed", { err: e.message })
      );
    }
    await this.#cleanupHost(act.state.vmDir, act.state.actorDir);
  }

  async #cleanupHost(vmDir: string, actorDir: string): Promise<void> {
    await cleanupActorNetwork(this.#netEnv()).catch((e) =>
      this.#log.error("actor network cleanup failed", { err: e.message })
    );
    await removeIfPresent(vmDir).catch((e) =>
      this.#log.error("removing the VM run directory failed", { err: e.message })
    );
    await clearState(this.#opts.worker.ateomDir, actorDir).catch((e) =>
      this.#log.error("removing the activation state failed", { err: e.message })
    );
  }

  async #unwind(undo: Unwind, log: Logger, cause: unknown, times: StepTimes): Promise<void> {
    const failures = await undo.unwind();
    log.warn("activation failed; everything it created was removed", {
      err: (cause as Error)?.message ?? String(cause),
      steps: times,
      unwind_failures: failures.length > 0 ? failures : undefined,
    });
  }
}
