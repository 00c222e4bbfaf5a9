/**
 * The `ateom.Ateom` service: validates each request, runs the RPCs one at a time, keeps the
 * available/executing state, emits the actor lifecycle events upstream emits ("Actor starting",
 * "Actor started", "Actor checkpointing", ...) and hands the work to a {@link WorkloadRuntime}.
 *
 * Order of checks per RPC: request validation (INVALID_ARGUMENT), then its turn in the queue,
 * then the state (FAILED_PRECONDITION / NOT_FOUND), then the runtime. A failed RPC leaves the
 * state as it was, unless the runtime says the actor is gone (its VM died): then available.
 *
 * @module
 */
import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  type Ateom,
  CheckpointWorkloadResponseSchema,
  RestoreWorkloadResponseSchema,
  RunWorkloadResponseSchema,
} from "../../proto/gen/ateom/ateom_pb.ts";
import type { Logger } from "../log/logger.ts";
import { actorDirName } from "../paths/paths.ts";
import type { WorkloadRequest, WorkloadRuntime } from "./runtime.ts";
import {
  admit,
  afterFailure,
  afterSuccess,
  INITIAL_STATE,
  type Rpc,
  type WorkerState,
} from "./state.ts";
import { SerialQueue } from "./serial.ts";
import { toConnectError } from "./errors.ts";
import {
  checkpointRequestOf,
  restoreRequestOf,
  runRequestOf,
  type ValidationContext,
} from "./validate.ts";

/** Lifecycle event names per RPC: before the runtime step and after it succeeded. */
const EVENTS: Record<Rpc, [string, string]> = {
  RunWorkload: ["Actor starting", "Actor started"],
  CheckpointWorkload: ["Actor checkpointing", "Actor checkpointed"],
  RestoreWorkload: ["Actor restoring", "Actor restored"],
};

export interface AteomServiceOptions extends ValidationContext {
  runtime: WorkloadRuntime;
  logger: Logger;
}

/** The service implementation plus what the server needs to drain it. */
export interface AteomService {
  impl: ServiceImpl<typeof Ateom>;
  /** The current state (for logs and tests). */
  state(): WorkerState;
  /** Resolves when no RPC is queued or running. */
  idle(): Promise<void>;
  /** RPCs queued or running. */
  pending(): number;
}

/** Creates the service over `options.runtime`. */
export function createAteomService(options: AteomServiceOptions): AteomService {
  const queue = new SerialQueue();
  let state: WorkerState = INITIAL_STATE;

  async function handle<Req extends WorkloadRequest, Res>(
    rpc: Rpc,
    validate: () => Req,
    step: (req: Req, signal: AbortSignal) => Promise<Res>,
    ctx: HandlerContext,
  ): Promise<Res> {
    const started = performance.now();
    let log = options.logger.with({ rpc });
    try {
      const req = validate();
      log = log.with({ actor: actorDirName(req.actor) });
      log.debug("RPC queued", { ahead: queue.pending });
      return await queue.run(async () => {
        const refusal = admit(state, rpc, req.actor);
        if (refusal) throw refusal;
        log.info("RPC started", { state: state.phase });
        const [before, after] = EVENTS[rpc];
        req.actorLog.event(before);
        let result: Res;
        try {
          result = await step(req, ctx.signal);
        } catch (e) {
          state = afterFailure(state, e);
          throw e;
        }
        state = afterSuccess(rpc, req.actor);
        req.actorLog.event(after);
        log.info("RPC finished", {
          state: state.phase,
          duration_ms: Math.round(performance.now() - started),
        });
        return result;
      }, ctx.signal);
    } catch (e) {
      const err = toConnectError(rpc, e, ctx.signal);
      log.warn("RPC failed", { code: Code[err.code], err: err.rawMessage, state: state.phase });
      throw err;
    }
  }

  const impl: ServiceImpl<typeof Ateom> = {
    runWorkload: (req, ctx) =>
      handle("RunWorkload", () => runRequestOf(req, options), async (r, signal) => {
        await options.runtime.run(r, signal);
        return create(RunWorkloadResponseSchema);
      }, ctx),
    checkpointWorkload: (req, ctx) =>
      handle("CheckpointWorkload", () => checkpointRequestOf(req, options), async (r, signal) => {
        const { snapshotFiles } = await options.runtime.checkpoint(r, signal);
        return create(CheckpointWorkloadResponseSchema, { snapshotFiles });
      }, ctx),
    restoreWorkload: (req, ctx) =>
      handle("RestoreWorkload", () => restoreRequestOf(req, options), async (r, signal) => {
        await options.runtime.restore(r, signal);
        return create(RestoreWorkloadResponseSchema);
      }, ctx),
  };
  return {
    impl,
    state: () => state,
    idle: () => queue.idle(),
    pending: () => queue.pending,
  };
}
