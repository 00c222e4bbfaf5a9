/**
 * Wall time of RunWorkload, CheckpointWorkload and RestoreWorkload through the gRPC API against
 * the instant doubles (strict CH double + kata-agent double) in a fake pod netns, with each RPC's
 * step breakdown (median over rounds) and the external processes the restore path spawns
 * (ip/tc/nft through lib/net's counting runner, the VMM, mkfs runs). Needs root (netns).
 *
 * Run: `make bench` (or `deno run -A tests/bench/main.ts lifecycle_bench`).
 *
 * @module
 */
import { buildStats } from "../../lib/rootfs/build.ts";
import { withFixture } from "../net/fixture.ts";
import {
  assetsOf,
  checkpointRequest,
  COUNTER,
  prepareBundles,
  restoreRequest,
  runRequest,
  shipCheckpoint,
  startWorker,
  type Worker,
} from "../lifecycle/harness.ts";

const ROUNDS = 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

type Samples = Record<string, number[]>;

function add(samples: Samples, key: string, value: number): void {
  (samples[key] ??= []).push(value);
}

function stepsOf(w: Worker, msg: string, field = "steps"): Record<string, number> {
  const line = w.logs.findLast((l) => l.msg === msg);
  return (line?.[field] ?? {}) as Record<string, number>;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function measure(chVersion: number): Promise<void> {
  await withFixture(async (fx) => {
    const w = await startWorker(fx, { chVersion });
    const wall: Samples = {};
    const steps: Record<string, Samples> = {
      run: {},
      capture: {},
      restore: {},
      "checkpoint after restore": {},
      "capture after restore": {},
    };
    const spawns: Samples = {};
    const assets = await assetsOf(w);
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const a = { namespace: "bench", template: "tmpl", id: `run-${chVersion}-${round}` };
        const b = { namespace: "bench", template: "tmpl", id: `rst-${chVersion}-${round}` };
        await prepareBundles(w, a, COUNTER);
        add(wall, "Run", await timed(() => w.client.runWorkload(runRequest(a, COUNTER, assets))));
        for (const [k, v] of Object.entries(stepsOf(w, "actor running"))) add(steps.run, k, v);
        add(
          wall,
          "Checkpoint",
          await timed(() => w.client.checkpointWorkload(checkpointRequest(a))),
        );
        for (const [k, v] of Object.entries(stepsOf(w, "snapshot captured", "phases"))) {
          add(steps.capture, k, v);
        }

        // Restore elsewhere (another actor: no golden template, the disk is rebuilt).
        await shipCheckpoint(w, a, w, b);
        await prepareBundles(w, b, COUNTER);
        const spawnedBefore = fx.env.runner.spawned;
        const mkfsBefore = buildStats.mkfsRuns;
        add(
          wall,
          "Restore",
          await timed(() => w.client.restoreWorkload(restoreRequest(b, COUNTER, assets))),
        );
        add(spawns, "ip/tc/nft", fx.env.runner.spawned - spawnedBefore);
        add(spawns, "mkfs runs", buildStats.mkfsRuns - mkfsBefore);
        for (const [k, v] of Object.entries(stepsOf(w, "actor restored"))) add(steps.restore, k, v);
        add(
          wall,
          "Checkpoint after restore",
          await timed(() => w.client.checkpointWorkload(checkpointRequest(b))),
        );
        for (const [k, v] of Object.entries(stepsOf(w, "actor checkpointed"))) {
          add(steps["checkpoint after restore"], k, v);
        }
        for (const [k, v] of Object.entries(stepsOf(w, "snapshot captured", "phases"))) {
          add(steps["capture after restore"], k, v);
        }

        // Restore in place (same actor: disk reset from its golden template).
        await shipCheckpoint(w, a, w, a);
        const before = fx.env.runner.spawned;
        const mkfs = buildStats.mkfsRuns;
        add(
          wall,
          "Restore (golden)",
          await timed(() => w.client.restoreWorkload(restoreRequest(a, COUNTER, assets))),
        );
        add(spawns, "ip/tc/nft (golden)", fx.env.runner.spawned - before);
        add(spawns, "mkfs runs (golden)", buildStats.mkfsRuns - mkfs);
        await w.client.checkpointWorkload(checkpointRequest(a));
      }
    } finally {
      await w.stop();
    }
    const run = median(wall.Run);
    console.log(`\nCH double v${chVersion}, ${ROUNDS} rounds, median wall time per RPC:`);
    for (const [name, values] of Object.entries(wall)) {
      console.log(
        `  ${name.padEnd(26)} ${median(values).toFixed(1).padStart(8)} ms   ${
          (median(values) / run).toFixed(2)
        } × Run`,
      );
    }
    for (const [rpc, byStep] of Object.entries(steps)) {
      console.log(`  ${rpc} steps (median ms):`);
      for (const [step, values] of Object.entries(byStep)) {
        console.log(`    ${step.padEnd(40)} ${median(values).toFixed(1).padStart(8)}`);
      }
    }
    console.log("  external processes on the restore path (per restore, besides 1 VMM):");
    for (const [what, values] of Object.entries(spawns)) {
      console.log(`    ${what.padEnd(24)} ${median(values)}`);
    }
  });
}

/** Entry point for tests/bench/main.ts. */
export async function run(): Promise<void> {
  for (const version of [54, 52]) await measure(version);
}

if (import.meta.main) await run();
