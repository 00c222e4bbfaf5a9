/**
 * Test harness for the API server: a temp base path, an in-process server with an injected
 * runtime, captured worker and actor log lines, and a recording fake runtime.
 *
 * @module
 */
import { jsonLogger } from "../../lib/log/logger.ts";
import { type RunningServer, startServer } from "../../lib/api/server.ts";
import type {
  CheckpointRequest,
  RestoreRequest,
  RunRequest,
  WorkloadRuntime,
} from "../../lib/api/runtime.ts";
import {
  CheckpointWorkloadRequestSchema,
  RestoreWorkloadRequestSchema,
  RunWorkloadRequestSchema,
  SnapshotScope,
} from "../../proto/gen/ateom/ateom_pb.ts";
import { encode } from "./client.ts";

export type Record_ = Record<string, unknown>;

/** A started server in a temp base path, with its captured logs. */
export interface Harness {
  base: string;
  server: RunningServer;
  socket: string;
  /** Parsed worker log records. */
  logs: Record_[];
  /** Parsed actor log records. */
  actorLogs: Record_[];
  /** Resolves at the first worker log record matching `pred` (past or future). */
  waitLog(pred: (r: Record_) => boolean): Promise<Record_>;
}

/** Runs `fn` against a fresh server; closes it and removes the temp dir even on failure. */
export async function withServer(
  runtime: WorkloadRuntime,
  fn: (h: Harness) => Promise<void>,
  options: { shutdownGraceMs?: number; podUid?: string } = {},
): Promise<void> {
  const base = await Deno.makeTempDir({ prefix: `ateom-api-${Deno.pid}-` });
  const logs: Record_[] = [];
  const actorLogs: Record_[] = [];
  const waiters: { pred: (r: Record_) => boolean; resolve: (r: Record_) => void }[] = [];
  const logger = jsonLogger((text) => {
    for (const line of text.split("\n").filter(Boolean)) {
      const rec = JSON.parse(line);
      logs.push(rec);
      for (const w of waiters.filter((w) => w.pred(rec))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(rec);
      }
    }
  }, "DEBUG");
  const server = await startServer({
    podUid: options.podUid ?? "pod-1",
    basePath: base,
    runtime,
    logger,
    actorLogSink: (text) =>
      actorLogs.push(...text.split("\n").filter(Boolean).map((l) => JSON.parse(l))),
    shutdownGraceMs: options.shutdownGraceMs,
  });
  const waitLog = (pred: (r: Record_) => boolean) => {
    const found = logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise<Record_>((resolve) => waiters.push({ pred, resolve }));
  };
  try {
    await fn({ base, server, socket: server.socketPath, logs, actorLogs, waitLog });
  } finally {
    await server.close();
    await Deno.remove(base, { recursive: true });
  }
}

type Op = "run" | "checkpoint" | "restore";
type AnyReq = RunRequest | CheckpointRequest | RestoreRequest;

/** A runtime that records calls and does what `behaviour` says (default: succeed at once). */
export class FakeRuntime implements WorkloadRuntime {
  calls: { op: Op; req: AnyReq; signal: AbortSignal }[] = [];
  behaviour: Partial<Record<Op, (req: AnyReq, signal: AbortSignal) => Promise<unknown>>> = {};
  snapshotFiles = ["config.json", "memory-ranges", "state.json"];

  async #call(op: Op, req: AnyReq, signal: AbortSignal): Promise<unknown> {
    this.calls.push({ op, req, signal });
    return await this.behaviour[op]?.(req, signal);
  }
  async run(req: RunRequest, signal: AbortSignal): Promise<void> {
    await this.#call("run", req, signal);
  }
  async checkpoint(req: CheckpointRequest, signal: AbortSignal) {
    await this.#call("checkpoint", req, signal);
    return { snapshotFiles: this.snapshotFiles };
  }
  async restore(req: RestoreRequest, signal: AbortSignal): Promise<void> {
    await this.#call("restore", req, signal);
  }
}

/** A promise the test resolves, plus one the runtime resolves when it got there. */
export function gate() {
  const entered = Promise.withResolvers<AbortSignal>();
  const release = Promise.withResolvers<void>();
  return {
    entered: entered.promise,
    release: () => release.resolve(),
    step: async (_req: unknown, signal: AbortSignal) => {
      entered.resolve(signal);
      await release.promise;
    },
  };
}

/** Resolves with the abort reason when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((r) =>
    signal.addEventListener("abort", () => r(signal.reason), { once: true })
  );
}

export const ACTOR = {
  actorTemplateNamespace: "default",
  actorTemplateName: "tmpl.v1",
  actorId: "act-1",
};
export const ASSETS = { "kata-kernel": "/assets/vmlinux", "kata-image": "/assets/kata.img" };
export const SPEC = {
  containers: [
    { name: "web", readyz: { httpGet: { path: "", port: 8080 } }, durableDirVolumes: ["data"] },
    { name: "side" },
  ],
};

export const RUN = "/ateom.Ateom/RunWorkload";
export const CHECKPOINT = "/ateom.Ateom/CheckpointWorkload";
export const RESTORE = "/ateom.Ateom/RestoreWorkload";

export function runBytes(init: Record<string, unknown> = {}): Uint8Array {
  return encode(RunWorkloadRequestSchema, {
    ...ACTOR,
    spec: SPEC,
    runtimeAssetPaths: ASSETS,
    ...init,
  });
}

export function checkpointBytes(
  init: Record<string, unknown> = {},
): Uint8Array {
  return encode(CheckpointWorkloadRequestSchema, {
    ...ACTOR,
    spec: SPEC,
    scope: SnapshotScope.FULL,
    snapshotUriPrefix: "gs://bucket/actors/act-1/snapshots/1/",
    ...init,
  });
}

export function restoreBytes(
  init: Record<string, unknown> = {},
): Uint8Array {
  return encode(RestoreWorkloadRequestSchema, {
    ...ACTOR,
    spec: SPEC,
    runtimeAssetPaths: ASSETS,
    scope: SnapshotScope.FULL,
    snapshotUriPrefix: "gs://bucket/actors/act-1/snapshots/1/",
    ...init,
  });
}
