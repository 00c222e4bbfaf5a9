/**
 * The steps the standalone commands share, in atelet's place: load settings and records, bring an
 * actor's pod network and supervisor up and call Run or Restore on it, and take it all down again.
 * Each command module composes these.
 *
 * @module
 */
import { ProcessRunner } from "../net/runner.ts";
import { removeNetns } from "../net/actor.ts";
import { loadConfig, type StandaloneConfig, stateDir } from "./config.ts";
import { type ActorRecord, StateDir } from "./state.ts";
import { createPod, hostSlotsInUse, podNetwork, removePod } from "./network.ts";
import { socketAnswers, startSupervisor, stopSupervisor } from "./supervisor.ts";
import { WorkerClient } from "./client.ts";
import { childrenOf, isAlive } from "./proc.ts";
import { loadState } from "../lifecycle/state.ts";
import { killByIdentity } from "../ch/vmm_process.ts";

const INTERRUPTS: Deno.Signal[] = ["SIGINT", "SIGTERM"];

/** Limit of one Run/Checkpoint/Restore RPC. */
export const RPC_TIMEOUT_MS = 10 * 60_000;

/** Settings and state dir of one CLI invocation. */
export interface Context {
  config: StandaloneConfig;
  state: StateDir;
}

export async function loadContext(): Promise<Context> {
  const config = await loadConfig();
  return { config, state: new StateDir(stateDir(config)) };
}

/** An actor the command cannot act on (exit 1 with this one line). */
export function noSuchActor(name: string): Error {
  return new Error(`no actor named ${name}: see 'ateom-microvm ps'`);
}

/** The record of `name`, or a one-line error. */
export async function mustRead(ctx: Context, name: string): Promise<ActorRecord> {
  const record = await ctx.state.read(name);
  if (!record) throw noSuchActor(name);
  return record;
}

/** Whether the record's supervisor process is still the one it started. */
export async function supervisorAlive(record: ActorRecord): Promise<boolean> {
  return !!record.supervisor && await isAlive(record.supervisor.pid, record.supervisor.startTicks);
}

/** The state ps shows: the recorded state, or "dead" when a running actor lost its supervisor. */
export async function observedState(record: ActorRecord): Promise<string> {
  if (
    (record.state === "running" || record.state === "starting") && !(await supervisorAlive(record))
  ) {
    return "dead";
  }
  return record.state;
}

/** The pod network slots taken: by recorded actors and by host links of any state dir. */
export async function usedSlots(ctx: Context): Promise<number[]> {
  const slots: number[] = hostSlotsInUse();
  for (const name of await ctx.state.names()) {
    const r = await ctx.state.read(name).catch(() => undefined);
    if (r) slots.push(r.slot);
  }
  return slots;
}

/**
 * `ATEOM_MICROVM_NETWORK=none`: no pod netns; the worker runs in the CLI's own netns, which must
 * then look like a pod's (an `eth0` with the IPv4 address to publish; one actor per netns). For
 * running the CLI inside a container or an existing pod, and for tests.
 */
export const NETWORK_ENV = "ATEOM_MICROVM_NETWORK";

function podNetworkWanted(): boolean {
  return Deno.env.get(NETWORK_ENV) !== "none";
}

/**
 * Brings up the pod network and the supervisor of `record`, then runs `call` against the worker.
 * On failure everything started here is taken down again and the error is rethrown.
 */
export async function activate(
  ctx: Context,
  record: ActorRecord,
  call: (client: WorkerClient, signal: AbortSignal) => Promise<void>,
): Promise<ActorRecord> {
  const runner = new ProcessRunner();
  const net = podNetwork(record.name, record.slot);
  const socket = ctx.state.socket(record.name);
  if (await socketAnswers(socket)) {
    throw new Error(
      `a worker already serves ${socket}: another ${record.name} is running; ` +
        `'ateom-microvm rm --force ${record.name}' first`,
    );
  }
  // Ctrl-C (or SIGTERM) from here on cancels the activation: the RPC is cancelled (the worker
  // unwinds what it built) and the catch below takes the rest down; the command exits 130.
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  for (const sig of INTERRUPTS) Deno.addSignalListener(sig, onSignal);
  try {
    if (podNetworkWanted()) await createPod(net, record.ports, runner);
    const supervisor = await startSupervisor({
      name: record.name,
      stateDir: ctx.state.root,
      logFile: ctx.state.logFile(record.name),
      socket,
      netns: podNetworkWanted() ? net.netns : undefined,
    });
    record.supervisor = supervisor;
    record.state = "starting";
    await ctx.state.write(record);
    const client = new WorkerClient(socket);
    try {
      await call(client, interrupt.signal);
    } finally {
      client.close();
    }
    record.state = "running";
    record.startedAt = new Date().toISOString();
    delete record.error;
    await ctx.state.write(record);
    return record;
  } catch (e) {
    await deactivate(ctx, record).catch(() => {});
    throw e;
  } finally {
    for (const sig of INTERRUPTS) Deno.removeSignalListener(sig, onSignal);
  }
}

/**
 * Takes `record`'s actor down: stops the supervisor (SIGTERM, the worker shuts down), kills what
 * it left running (the VMM), and removes the pod network. Safe to repeat.
 */
export async function deactivate(ctx: Context, record: ActorRecord): Promise<void> {
  const leftovers: number[] = [];
  if (record.supervisor && await supervisorAlive(record)) {
    leftovers.push(...await childrenOf(record.supervisor.pid));
    await stopSupervisor(record.supervisor);
  }
  for (const pid of leftovers) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
  }
  // A VMM whose supervisor died earlier is no longer its child: the worker's persisted
  // activation state identifies it (pid + start time).
  const activation = await loadState(ctx.state.worker.actorDir(record.actor)).catch(() =>
    undefined
  );
  if (activation) await killByIdentity(activation.vmm).catch(() => {});
  delete record.supervisor;
  const net = podNetwork(record.name, record.slot);
  if (podNetworkWanted()) {
    await removePod(net, new ProcessRunner());
  } else {
    // Without a pod netns of ours, only the worker's interior netns (named after its pod UID,
    // the actor's name) is ours to remove.
    await removeNetns(net.interiorNetns, new ProcessRunner());
  }
}
