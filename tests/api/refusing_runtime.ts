/**
 * A runtime double for API-layer tests: every step answers UNIMPLEMENTED, naming the step and
 * the actor, so a test sees that the service validated the request and checked the actor state
 * before handing it to the runtime, and how a runtime's error reaches the client.
 *
 * @module
 */
import { RuntimeError, type WorkloadRuntime } from "../../lib/api/runtime.ts";

function refuse(rpc: string, verb: string, actor: string): Promise<never> {
  return Promise.reject(
    new RuntimeError(
      "UNIMPLEMENTED",
      `${rpc} is refused by this test runtime: it cannot ${verb} actor ${actor}`,
    ),
  );
}

export const refusingRuntime: WorkloadRuntime = {
  run: (req) => refuse("RunWorkload", "boot", req.actor.id),
  checkpoint: (req) => refuse("CheckpointWorkload", "snapshot", req.actor.id),
  restore: (req) => refuse("RestoreWorkload", "restore", req.actor.id),
};
