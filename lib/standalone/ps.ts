/**
 * `ps`: the standalone actors with their state, supervisor pid, memory (resident memory of the
 * processes the supervisor started: the VMM), uptime of the current activation, and snapshot
 * lineage.
 *
 * @module
 */
import { type Command, parseFlags, UsageError } from "../cli/command.ts";
import { loadContext, observedState } from "./actor.ts";
import type { ActorRecord } from "./state.ts";
import { childrenOf, rssBytes } from "./proc.ts";
import { isVmmAlive, loadState } from "../lifecycle/state.ts";
import { podNetwork } from "./network.ts";
import { formatBytes, formatDuration, table } from "./output.ts";

/** One row of `ps --json`. */
export interface PsEntry {
  name: string;
  state: string;
  pid: number | null;
  memoryBytes: number | null;
  uptimeSeconds: number | null;
  ports: string[];
  /** The pod IP: the actor's port 80 answers on it from the host. */
  address: string;
  lineage: { uri: string; at: string; name: string }[];
  error?: string;
}

/** The ps row of `record` at time `now`, with `memory` measuring a supervisor's VMM. */
export function psEntry(
  record: ActorRecord,
  state: string,
  memory: number | undefined,
  now: Date,
): PsEntry {
  const live = state === "running" || state === "starting";
  const pid = live && record.supervisor ? record.supervisor.pid : null;
  return {
    name: record.name,
    state,
    pid,
    memoryBytes: pid !== null ? memory ?? null : null,
    uptimeSeconds: live && record.startedAt
      ? Math.max(0, Math.floor((now.getTime() - Date.parse(record.startedAt)) / 1000))
      : null,
    ports: record.ports.map((p) => `${p.host}:${p.guest}`),
    address: podNetwork(record.name, record.slot).podIp,
    lineage: record.lineage,
    ...(record.error ? { error: record.error } : {}),
  };
}

/** The text table of `ps`. */
export function psTable(entries: PsEntry[]): string {
  return table(
    ["NAME", "STATE", "PID", "MEMORY", "UPTIME", "PORTS", "SNAPSHOTS"],
    entries.map((e) => [
      e.name,
      e.state,
      e.pid === null ? "-" : String(e.pid),
      e.memoryBytes === null ? "-" : formatBytes(e.memoryBytes),
      e.uptimeSeconds === null ? "-" : formatDuration(e.uptimeSeconds),
      e.ports.length ? e.ports.join(",") : "-",
      e.lineage.length ? `${e.lineage.length} (last ${e.lineage.at(-1)!.uri})` : "-",
    ]),
  );
}

/**
 * Resident memory of the actor's VMM: the process the worker recorded in its activation state,
 * else what the supervisor `pid` started (its children).
 */
export async function vmmMemory(pid: number, actorDir: string): Promise<number | undefined> {
  const activation = await loadState(actorDir).catch(() => undefined);
  if (activation && await isVmmAlive(activation.vmm)) {
    return await rssBytes(activation.vmm.pid);
  }
  const children = await childrenOf(pid);
  if (children.length === 0) return undefined;
  let sum = 0;
  for (const child of children) sum += await rssBytes(child) ?? 0;
  return sum;
}

export const psCommand: Command = {
  name: "ps",
  summary: "list standalone actors",
  help: `Usage: ateom-microvm ps [--json]

Lists the standalone actors: NAME, STATE (starting, running, checkpointed, failed, or dead when
its supervisor is gone), PID of the supervisor, MEMORY resident in the VMM, UPTIME since the last
run or restore, published PORTS, and SNAPSHOTS (how many checkpoints it descends from, and the
newest).

Options:
  --json   print a JSON array (memoryBytes, uptimeSeconds, address: the pod IP whose port 80
           reaches the actor from this host, the whole lineage)`,
  async run(args) {
    const { values, positionals } = parseFlags(args, { json: { type: "boolean" } });
    if (positionals.length) {
      throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    }
    const ctx = await loadContext();
    const now = new Date();
    const entries: PsEntry[] = [];
    for (const name of await ctx.state.names()) {
      const record = await ctx.state.read(name);
      if (!record) continue;
      const state = await observedState(record);
      const memory = record.supervisor && (state === "running" || state === "starting")
        ? await vmmMemory(record.supervisor.pid, ctx.state.worker.actorDir(record.actor))
        : undefined;
      entries.push(psEntry(record, state, memory, now));
    }
    console.log(values.json ? JSON.stringify(entries) : psTable(entries));
    return 0;
  },
};
