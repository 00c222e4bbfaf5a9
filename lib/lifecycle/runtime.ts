/**
 * The micro-VM {@link WorkloadRuntime}: each actor runs as a cloud-hypervisor VM with a kata
 * guest; Checkpoint snapshots it and tears it down, Restore resumes it from a snapshot.
 *
 * Each RPC reads as a list of named steps (`#step`); the I/O of every step lives in its
 * subsystem (lib/ch, lib/kata, lib/net, lib/rootfs, lib/sparse). Every step that creates
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
import { ChClient, isRestoreInProgress } from "../ch/client.ts";
import { describeStatus, identityOf, killByIdentity, VmmProcess } from "../ch/vmm_process.ts";
import {
  rewriteSnapshotConfig,
  type SnapshotNetDevice,
  snapshotNetDevices,
} from "../ch/snapshot_config.ts";
import type { AgentClient } from "../kata/agent_client.ts";
import { readKataConfig, withAgentDebug, withDebugConsole } from "../kata/config.ts";
import { connectAgent } from "../kata/connect.ts";
import { debugConsoleDump } from "../kata/debug_console.ts";
import { gatewayNeighbor, guestInterface, guestRoutes } from "../kata/guestnet.ts";
import {
  createContainerRequest,
  guestBlockDevice,
  type OciSpec,
  shapeBundleConfig,
} from "../kata/specconv.ts";
import type { ActorLogWriter } from "../log/actorlog.ts";
import type { Logger } from "../log/logger.ts";
import {
  type ActorNetworkEnv,
  cleanupActorNetwork,
  closeTapFds,
  ensureInteriorNetns,
  setupActorNetwork,
} from "../net/actor.ts";
import {
  ACTOR_IP,
  ACTOR_MTU,
  ACTOR_PREFIX,
  GATEWAY_IP,
  GUEST_MAC,
  HOST_VETH_MAC,
} from "../net/plan.ts";
import { type CommandRunner, ProcessRunner } from "../net/runner.ts";
import { checkNetworkTools } from "../net/tools.ts";
import { ateomNetnsPath } from "../paths/paths.ts";
import { buildImage } from "../rootfs/build.ts";
import { logBuildProgress, ROOTFS_READY_MSG } from "./build_log.ts";
import { resetFromGolden, saveGolden } from "../rootfs/golden.ts";
import { mergeDelta, type MergeHooks, trashPathOf, workPathOf } from "../sparse/merge.ts";
import { type Assets, resolveAssets } from "./assets.ts";
import {
  agentContainerId,
  goldenDiskOf,
  rootfsDiskName,
  rootfsDiskOf,
  type VmDir,
  vmDirOf,
} from "./layout.ts";
import { type MemoryModeFlag, memoryPlan } from "./memory_mode.ts";
import { type Prober, tcpProber, waitReady } from "./readiness.ts";
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
import { Unwind } from "./unwind.ts";
import { buildVmConfig } from "./vm_config.ts";

/** The file a checkpoint writes with the golden lineage id. */
export const BASE_ID_FILE = "base-id";
/** The snapshot's memory image (CH's name). */
export const MEMORY_FILE = "memory-ranges";

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

/** Duration of each named step of one RPC, in ms. */
export type StepTimes = Record<string, number>;

/** A running activation, as this process knows it. */
interface Activation {
  state: ActivationState;
  client: ChClient;
  /** Present when this process launched the VMM; absent for an adopted one. */
  vmm?: VmmProcess;
  agent?: AgentClient;
  logs?: { stop: AbortController; done: Promise<unknown> };
  /** The checkpoint capture in flight or finished (joined by a retried Checkpoint). */
  capture?: Promise<string[]>;
  /** Set when this process stops the VMM itself: its exit is then expected. */
  ending?: boolean;
  /** The supervisor's handling of the VMM's exit (teardown waits for it before cleaning up). */
  exitHandled?: Promise<void>;
}

/** What the boot of Run or Restore hands to {@link MicroVmRuntime}'s common frame. */
interface Booted {
  act: Activation;
  vm: VmDir;
  /** Attributes of the outcome log line. */
  outcome: Record<string, unknown>;
}

const LONG_CALL_MS = 10 * 60_000;

/** The resolv.conf lines the agent writes into the guest (`CreateSandbox.dns`). */
export function dnsLines(resolvConf: string): string[] {
  return resolvConf.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
}

/** The error a step failure becomes: the step named, the code kept for RuntimeErrors. */
function stepError(step: string, e: unknown): Error {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof RuntimeError) {
    return new RuntimeError(e.code, `${step}: ${message}`, { actorGone: e.actorGone });
  }
  return new Error(`${step}: ${message.split("\n")[0]}`, { cause: e });
}

/** Resolves with `promise` or rejects when `signal` aborts (the work itself goes on). */
function waitFor<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

async function removeIfPresent(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Times and names the steps of one RPC. */
class Steps {
  readonly times: StepTimes = {};
  constructor(readonly log: Logger, readonly signal: AbortSignal) {}

  /** Runs step `name`; a failure is rethrown naming it. Checks the signal first. */
  async run<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    if (this.signal.aborted) throw this.signal.reason;
    const started = performance.now();
    try {
      return await fn();
    } catch (e) {
      this.log.warn("step failed", { step: name, err: (e as Error)?.message ?? String(e) });
      throw stepError(name, e);
    } finally {
      this.times[name] = Math.round((performance.now() - started) * 10) / 10;
    }
  }
}

/** The micro-VM runtime. */
export class MicroVmRuntime implements WorkloadRuntime {
  readonly #opts: MicroVmRuntimeOptions;
  readonly #log: Logger;
  readonly #runner: CommandRunner;
  readonly #prober: Prober;
  /** Tells this instance's activations from those a restarted worker adopted. */
  readonly #id = crypto.randomUUID();
  #active: Activation | undefined;

  constructor(options: MicroVmRuntimeOptions) {
    this.#opts = options;
    this.#log = options.logger.with({ component: "microvm" });
    this.#runner = options.runner ?? new ProcessRunner();
    this.#prober = options.prober ?? tcpProber;
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
    await this.#activate("RunWorkload", req, signal, async (steps, undo, log) => {
      const assets = await steps.run("resolving runtime assets", () => this.#assets(req, true));
      const guest = await steps.run("reading the kata config", () => this.#guestConfig(assets));
      const vm = await steps.run("preparing the VM run directory", () => this.#vmDir(undo));
      const containers = await steps.run("shaping container specs", () => this.#shapeSpecs(req));
      const resolvConf = this.#opts.resolvConf ?? "/etc/resolv.conf";
      await steps.run("building rootfs disks", () => this.#buildDisks(req, log, signal));
      const net = await steps.run("setting up the actor network", () => this.#setupNet(undo, 1));
      const vmm = await steps.run(
        "launching cloud-hypervisor",
        () => this.#launch(assets, vm, undo, req.actor.id, signal),
      );
      const state = await steps.run(
        "recording the activation",
        () => this.#record(req, vm, vmm, undo, { baseId: req.actor.id, atCheckpoint: "none" }),
      );
      const call = { signal, timeoutMs: this.#opts.vmmCallTimeoutMs };
      await steps.run(
        "creating the VM",
        () => vmm.client.create(guest.config(vm, state.containers.map((c) => c.disk)), call),
      );
      await steps.run("adding the network device", async () => {
        try {
          await vmm.client.addNet({ mac: GUEST_MAC }, net.tapFds, call);
        } finally {
          closeTapFds(net.tapFds.splice(0));
        }
      });
      await steps.run("booting the VM", () => vmm.client.boot(call));
      const agent = await steps.run(
        "dialing the kata agent",
        () => this.#dialAgent(vm, undo, signal, log),
      );
      await steps.run("creating the sandbox", async () =>
        agent.createSandbox({
          sandboxId: req.actor.id,
          hostname: containers[0].spec.hostname ?? "",
          dns: dnsLines(await Deno.readTextFile(resolvConf).catch(() => "")),
        }, { signal }));
      await steps.run("configuring the guest network", () => this.#guestNetwork(agent, signal, vm));
      for (const [i, c] of containers.entries()) {
        await steps.run(`starting container ${c.name}`, async () => {
          await agent.createContainer(
            createContainerRequest({
              containerId: c.agentId,
              spec: c.spec,
              rootfsDevice: guestBlockDevice(i + 1),
            }),
            { signal },
          );
          await agent.startContainer(c.agentId, { signal });
        });
      }
      return {
        act: { state, client: vmm.client, vmm, agent },
        vm,
        outcome: { vmm_pid: vmm.pid, ch_version: vmm.version.version },
      };
    });
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
      act.capture = this.#capture(act, req, log);
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

  /**
   * Pause, snapshot (waiting out a v53+ background fill), merge, verify, golden copies, file
   * list. Detached from the RPC: a cancelled caller stops waiting, the capture goes on, and the
   * next Checkpoint joins it.
   */
  async #capture(act: Activation, req: CheckpointRequest, log: Logger): Promise<string[]> {
    const dir = req.paths.checkpointStateDir;
    const times: StepTimes = {};
    const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      try {
        return await fn();
      } catch (e) {
        throw stepError(name, e);
      } finally {
        times[name] = Math.round((performance.now() - t) * 10) / 10;
      }
    };
    const client = act.client;
    // Persisted before the test seam runs, so a "crash" there leaves what a real one would.
    const reached = async (captured: CapturePhase) => {
      act.state = { ...act.state, capture: { phase: captured, dir } };
      await saveState(this.#opts.worker.ateomDir, act.state);
      await this.#opts.onCapturePhase?.(captured);
    };
    // A retry, or a restarted worker, goes on from the phase recorded for this directory.
    const recorded = () => act.state.capture?.dir === dir ? act.state.capture.phase : undefined;
    if (recorded() === undefined) {
      await phase("pausing the VM", () => client.pause());
      try {
        await phase("snapshotting the VM", () => this.#snapshot(act, dir, log));
      } catch (e) {
        // The actor stays usable: resume it and leave no partial checkpoint behind.
        await removeIfPresent(dir).catch(() => {});
        await client.resume().catch((r) =>
          log.warn("resuming the VM after a failed snapshot failed", { err: r.message })
        );
        throw e;
      }
      await reached("snapshotted");
    }
    // From here the VM stays paused and checkpoint-state/ is kept: a retried Checkpoint goes on
    // from this point (the merge recovers from an interruption; see lib/sparse/merge.ts).
    if (act.state.atCheckpoint === "merge" && recorded() !== "merged") {
      await phase("merging the OnDemand delta", async () => {
        const resumed = recorded() === "merging";
        if (!resumed) await reached("merging");
        await this.#merge(act, dir, log, resumed);
      });
      await reached("merged");
    }
    await phase("verifying the memory image", () => verifyMemoryImage(dir));
    await phase(
      "writing base-id",
      () => Deno.writeTextFile(join(dir, BASE_ID_FILE), act.state.baseId, { mode: 0o600 }),
    );
    await phase("saving golden rootfs", async () => {
      for (const c of act.state.containers) {
        if (await saveGolden(c.disk, c.golden)) log.info("saved golden rootfs", { disk: c.golden });
      }
    });
    const files = await phase("listing snapshot files", () => regularFiles(dir));
    log.info("snapshot captured", { phases: times });
    return files;
  }

  async #snapshot(act: Activation, dir: string, log: Logger): Promise<void> {
    const started = Date.now();
    for (let attempt = 1;; attempt++) {
      await removeIfPresent(dir);
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      try {
        await act.client.snapshot(dir, { timeoutMs: LONG_CALL_MS });
        if (attempt > 1) log.info("snapshot accepted after the memory fill", { attempts: attempt });
        return;
      } catch (e) {
        if (!isRestoreInProgress(e) || act.state.atCheckpoint !== "wait") throw e;
        if (Date.now() - started > LONG_CALL_MS) {
          throw new Error(
            `cloud-hypervisor still refuses to snapshot after ${attempt} attempts over ${
              LONG_CALL_MS / 1000
            } s: the on-demand memory fill does not complete; check the VMM's log`,
          );
        }
        log.debug("snapshot refused while memory fills; retrying", { attempt });
        await new Promise((r) => setTimeout(r, Math.min(500, 20 * attempt)));
      }
    }
  }

  /**
   * Merges the OnDemand delta in `dir` onto the restore source. `resumed`: an earlier merge was
   * recorded as started; when neither its base nor its work file remains, it completed (its last
   * step renames the work file onto the delta) and only the phase was not recorded.
   */
  async #merge(act: Activation, dir: string, log: Logger, resumed: boolean): Promise<void> {
    const source = act.state.restoreSource;
    if (!source) throw new Error("no restore source recorded for this OnDemand activation");
    const base = join(source, MEMORY_FILE);
    const delta = join(dir, MEMORY_FILE);
    if (resumed && !(await exists(base)) && !(await exists(workPathOf(delta)))) {
      await removeIfPresent(trashPathOf(base));
      log.info("the interrupted OnDemand merge had completed", { delta });
      return;
    }
    const result = await mergeDelta(base, delta, this.#opts.mergeHooks);
    log.info("merged the OnDemand delta onto the restore source", { ...result });
  }

  // ---- RestoreWorkload ----

  async restore(req: RestoreRequest, signal: AbortSignal): Promise<void> {
    if (req.scope === "data") {
      throw new RuntimeError(
        "UNIMPLEMENTED",
        "RestoreWorkload with scope DATA is not supported by the micro-VM runtime: it restores whole VM snapshots; use scope FULL",
      );
    }
    const source = req.paths.restoreStateDir;
    await this.#activate("RestoreWorkload", req, signal, async (steps, undo, log) => {
      const assets = await steps.run("resolving runtime assets", () => this.#assets(req, false));
      await steps.run("checking restore-state", () => checkRestoreState(source));
      const baseId = await steps.run(
        "reading base-id",
        async () =>
          (await Deno.readTextFile(join(source, BASE_ID_FILE)).catch(() => "")).trim() ||
          req.actor.id,
      );
      const vm = await steps.run("preparing the VM run directory", () => this.#vmDir(undo));
      await steps.run("preparing rootfs disks", () => this.#restoreDisks(req, log, signal));
      await steps.run("repointing the snapshot config", async () => {
        const config = JSON.parse(await Deno.readTextFile(join(source, "config.json")));
        await rewriteSnapshotConfig(source, {
          vsockSocket: vm.vsockSocket,
          serialFile: vm.serialLog,
          disks: {
            ...guestImageRepoint(config, assets.image),
            ...Object.fromEntries(
              req.containers.map((c) => [
                rootfsDiskName(c.name),
                rootfsDiskOf(req.paths.actorDir, c.name),
              ]),
            ),
          },
        });
      });
      const devices = await steps.run(
        "reading snapshot net devices",
        async () => fdBackedNetDevices(await snapshotNetDevices(source)),
      );
      const net = await steps.run(
        "setting up the actor network",
        () => this.#setupNet(undo, devices[0]?.queuePairs ?? 1),
      );
      const vmm = await steps.run(
        "launching cloud-hypervisor",
        () => this.#launch(assets, vm, undo, req.actor.id, signal),
      );
      const plan = memoryPlan(vmm.version.major, this.#opts.memoryRestoreMode);
      const state = await steps.run(
        "recording the activation",
        () =>
          this.#record(req, vm, vmm, undo, {
            baseId,
            restoreSource: source,
            memoryMode: plan.mode,
            atCheckpoint: plan.atCheckpoint,
          }),
      );
      await steps.run(`restoring the VM (${plan.mode})`, async () => {
        try {
          await vmm.client.restore(
            {
              source_url: `file://${source}`,
              memory_restore_mode: plan.mode,
              net_fds: devices.map((d) => ({ id: d.id, num_fds: net.tapFds.length })),
            },
            devices.length > 0 ? net.tapFds : [],
            { signal, timeoutMs: LONG_CALL_MS },
          );
        } finally {
          closeTapFds(net.tapFds.splice(0));
        }
      });
      await steps.run("resuming the VM", () => vmm.client.resume({ signal }));
      const agent = await steps.run(
        "dialing the kata agent",
        () => this.#dialAgent(vm, undo, signal, log),
      );
      await steps.run(
        "setting the guest clock",
        () => agent.setGuestDateTime(new Date(), { signal }),
      );
      return {
        act: { state, client: vmm.client, vmm, agent },
        vm,
        outcome: {
          memory_restore_mode: plan.mode,
          at_checkpoint: plan.atCheckpoint,
          ch_version: vmm.version.version,
        },
      };
    });
  }

  // ---- steps ----

  #assets(req: WorkloadRequest, needBoot: boolean): Assets {
    if (this.#active) {
      throw new RuntimeError(
        "FAILED_PRECONDITION",
        `actor ${this.#active.state.actor.id} is still running on this worker; checkpoint it first`,
      );
    }
    return resolveAssets(req.runtimeAssetPaths, this.#opts, needBoot);
  }

  async #guestConfig(assets: Assets) {
    const kata = await readKataConfig(assets.kataConfig);
    let params = withDebugConsole(kata.kernelParams);
    if (this.#opts.kataDebug) params = withAgentDebug(params);
    return {
      kata,
      config: (vm: VmDir, disks: string[]) =>
        buildVmConfig({
          kernel: assets.kernel,
          image: assets.image,
          disks,
          kernelParams: params,
          memoryMiB: kata.memoryMiB,
          vcpus: kata.vcpus,
          serialLog: vm.serialLog,
          vsockSocket: vm.vsockSocket,
        }),
    };
  }

  async #vmDir(undo: Unwind): Promise<VmDir> {
    const vm = vmDirOf(this.#opts.worker.ateomDir);
    // A SIGKILLed VMM leaves its sockets behind, and CH refuses to bind over them.
    await removeIfPresent(vm.dir);
    await Deno.mkdir(vm.dir, { recursive: true, mode: 0o700 });
    undo.push("VM run directory", () => removeIfPresent(vm.dir));
    return vm;
  }

  async #shapeSpecs(req: RunRequest): Promise<{ name: string; agentId: string; spec: OciSpec }[]> {
    const out = [];
    for (const c of req.containers) {
      const agentId = agentContainerId(c.name);
      const spec = await shapeBundleConfig(c.bundleDir, {
        containerId: agentId,
        netnsPath: ateomNetnsPath(this.#opts.worker.podUid),
      });
      out.push({ name: c.name, agentId, spec });
    }
    return out;
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

  async #restoreDisks(req: RestoreRequest, log: Logger, signal: AbortSignal): Promise<void> {
    for (const c of req.containers) {
      const disk = rootfsDiskOf(req.paths.actorDir, c.name);
      const golden = goldenDiskOf(req.paths.actorDir, c.name);
      if (await exists(golden)) {
        await resetFromGolden(golden, disk);
        log.info("reset rootfs disk from its golden template", { container: c.name });
      } else {
        await this.#buildDisks({ ...req, containers: [c] }, log, signal);
      }
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

  async #guestNetwork(agent: AgentClient, signal: AbortSignal, vm: VmDir): Promise<void> {
    const values = {
      guestCidr: `${ACTOR_IP}/${ACTOR_PREFIX}`,
      gateway: GATEWAY_IP,
      guestMac: GUEST_MAC,
      gatewayMac: HOST_VETH_MAC,
      mtu: ACTOR_MTU,
    };
    try {
      await agent.updateInterface(guestInterface(values), { signal });
      await agent.updateRoutes(guestRoutes(values), { signal });
      await agent.addArpNeighbors([gatewayNeighbor(values)], { signal });
    } catch (e) {
      const dump = await debugConsoleDump(vm.vsockSocket, "ip addr; ip route; ip neigh", {
        deadlineMs: 3000,
      });
      this.#log.error("guest network configuration failed; guest dump", { dump });
      throw e;
    }
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

/**
 * The repoint of the snapshot's read-only guest image (vda) to this node's `image` asset, by
 * the basename config.json records; nothing when no image is given or it is already there.
 */
export function guestImageRepoint(config: unknown, image: string): Record<string, string> {
  if (!image) return {};
  const disks = ((config as { disks?: { path?: unknown; readonly?: unknown }[] })?.disks) ?? [];
  const current = disks.find((d) => d.readonly === true && typeof d.path === "string");
  if (!current || current.path === image) return {};
  const path = current.path as string;
  return { [path.slice(path.lastIndexOf("/") + 1)]: image };
}

/** Throws FAILED_PRECONDITION unless restore-state/ holds a CH snapshot. */
async function checkRestoreState(dir: string): Promise<void> {
  const missing = [];
  for (const name of ["config.json", "state.json", MEMORY_FILE]) {
    if (!(await exists(join(dir, name)))) missing.push(name);
  }
  if (missing.length > 0) {
    throw new RuntimeError(
      "FAILED_PRECONDITION",
      `${dir} lacks ${
        missing.join(", ")
      }: download the checkpoint into restore-state/ before RestoreWorkload`,
    );
  }
}

/** Throws unless the snapshot's memory image has the size config.json declares. */
export async function verifyMemoryImage(dir: string): Promise<void> {
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  const size = config?.memory?.size;
  const stat = await Deno.stat(join(dir, MEMORY_FILE)).catch(() => undefined);
  if (!stat) throw new Error(`the snapshot has no ${MEMORY_FILE}`);
  if (typeof size === "number" && stat.size !== size) {
    throw new Error(
      `${MEMORY_FILE} is ${stat.size} bytes but the VM has ${size}: the memory image is incomplete`,
    );
  }
}

/** Names of the regular files directly in `dir`, sorted. */
export async function regularFiles(dir: string): Promise<string[]> {
  const names = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
  return names.sort();
}

/**
 * The snapshot's net devices that need tap fds on restore: at most one (the actor network gives
 * the VM one device, as upstream does); more answer UNIMPLEMENTED naming them.
 */
export function fdBackedNetDevices(devices: SnapshotNetDevice[]): SnapshotNetDevice[] {
  const fdBacked = devices.filter((d) => d.fdBacked);
  if (fdBacked.length > 1) {
    throw new RuntimeError(
      "UNIMPLEMENTED",
      `the snapshot has ${fdBacked.length} fd-backed net devices (${
        fdBacked.map((d) => d.id).join(", ")
      }); the micro-VM runtime restores exactly one (the actor network): checkpoint a VM with a single network device`,
    );
  }
  return fdBacked;
}
