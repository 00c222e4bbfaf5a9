/**
 * A TypeScript gRPC client of `ateom.Ateom` over the worker's unix socket (connect-node's gRPC
 * transport on HTTP/2 cleartext), for the lifecycle tests: real framing, real deadlines
 * (`grpc-timeout`) and cancellation (RST_STREAM).
 *
 * @module
 */
import { connect } from "node:net";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Ateom } from "../../proto/gen/ateom/ateom_pb.ts";

export type AteomClient = Client<typeof Ateom>;

/** A client whose every call goes over `socketPath`. */
export function ateomClient(socketPath: string): AteomClient {
  const transport = createGrpcTransport({
    baseUrl: "http://localhost",
    nodeOptions: { createConnection: () => connect({ path: socketPath }) },
  });
  return createClient(Ateom, transport);
}

/** The gRPC status of a failed call: code name and message. */
export interface Failure {
  code: string;
  message: string;
}

const CODE_NAMES: Record<number, string> = {
  1: "CANCELLED",
  2: "UNKNOWN",
  3: "INVALID_ARGUMENT",
  4: "DEADLINE_EXCEEDED",
  5: "NOT_FOUND",
  6: "ALREADY_EXISTS",
  7: "PERMISSION_DENIED",
  8: "RESOURCE_EXHAUSTED",
  9: "FAILED_PRECONDITION",
  10: "ABORTED",
  11: "OUT_OF_RANGE",
  12: "UNIMPLEMENTED",
  13: "INTERNAL",
  14: "UNAVAILABLE",
  15: "DATA_LOSS",
};

/** Runs `call`, expecting it to fail; returns its status. */
export async function failureOf(call: Promise<unknown>): Promise<Failure> {
  try {
    await call;
  } catch (e) {
    if (e instanceof ConnectError) {
      return { code: CODE_NAMES[e.code] ?? String(e.code), message: e.rawMessage };
    }
    throw e;
  }
  throw new Error("the call succeeded but a failure was expected");
}
