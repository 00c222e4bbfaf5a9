/**
 * The small pieces of the API layer, pure: the serial queue, the worker state machine and the
 * unknown-method answer.
 */
import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { SerialQueue } from "./serial.ts";
import { encodeGrpcMessage, unknownMethodHeaders } from "./unknown_method.ts";
import { admit, afterSuccess, INITIAL_STATE } from "./state.ts";

const A = { namespace: "n", template: "t", id: "a" };

Deno.test("serial queue: one task at a time; a task aborted while waiting never runs", async () => {
  const q = new SerialQueue();
  const order: string[] = [];
  const first = Promise.withResolvers<void>();
  const p1 = q.run(async () => {
    order.push("1 start");
    await first.promise;
    order.push("1 end");
  });
  const abort = new AbortController();
  const p2 = q.run(() => Promise.resolve(order.push("2")), abort.signal);
  const p3 = q.run(() => Promise.resolve(order.push("3")));
  assertEquals(q.pending, 3);
  abort.abort(new Error("gave up"));
  await assertRejects(() => p2, "gave up");
  first.resolve();
  await Promise.all([p1, p3]);
  assertEquals(order, ["1 start", "1 end", "3"]);
  assertEquals(q.pending, 0);
});

Deno.test("state: transitions and refusals", () => {
  assertEquals(admit(INITIAL_STATE, "RunWorkload", A), undefined);
  assertEquals(admit(INITIAL_STATE, "CheckpointWorkload", A)?.code, "FAILED_PRECONDITION");
  const executing = afterSuccess("RunWorkload", A);
  assertEquals(executing, { phase: "executing", actor: A });
  assertEquals(admit(executing, "RestoreWorkload", A)?.code, "FAILED_PRECONDITION");
  assertEquals(admit(executing, "CheckpointWorkload", { ...A, id: "b" })?.code, "NOT_FOUND");
  assertEquals(admit(executing, "CheckpointWorkload", A), undefined);
  assertEquals(afterSuccess("CheckpointWorkload", A), INITIAL_STATE);
});

Deno.test("unknown method: trailers-only headers with a percent-encoded message", () => {
  assertEquals(encodeGrpcMessage("50% é\n"), "50%25 %C3%A9%0A");
  assertEquals(unknownMethodHeaders("/x.Y/Z", ["ateom.Ateom"]), {
    ":status": 200,
    "content-type": "application/grpc",
    "grpc-status": "12",
    "grpc-message": "unknown method /x.Y/Z: this worker serves ateom.Ateom",
  });
});
