/**
 * Maps what the service and runtimes throw to gRPC statuses: a {@link RuntimeError} keeps its
 * code and message, an abort keeps the abort's status (deadline, cancellation, shutdown), and
 * anything else is INTERNAL with the underlying message.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { type RpcCode, RuntimeError } from "./runtime.ts";

const CODES: Record<RpcCode, Code> = {
  CANCELLED: Code.Canceled,
  UNKNOWN: Code.Unknown,
  INVALID_ARGUMENT: Code.InvalidArgument,
  DEADLINE_EXCEEDED: Code.DeadlineExceeded,
  NOT_FOUND: Code.NotFound,
  ALREADY_EXISTS: Code.AlreadyExists,
  PERMISSION_DENIED: Code.PermissionDenied,
  RESOURCE_EXHAUSTED: Code.ResourceExhausted,
  FAILED_PRECONDITION: Code.FailedPrecondition,
  ABORTED: Code.Aborted,
  OUT_OF_RANGE: Code.OutOfRange,
  UNIMPLEMENTED: Code.Unimplemented,
  INTERNAL: Code.Internal,
  UNAVAILABLE: Code.Unavailable,
  DATA_LOSS: Code.DataLoss,
};

/** The numeric gRPC code of `code`. */
export function grpcCode(code: RpcCode): number {
  return CODES[code];
}

/** The status to answer `rpc` with after it threw `err` while `signal` governed it. */
export function toConnectError(rpc: string, err: unknown, signal: AbortSignal): ConnectError {
  if (err instanceof RuntimeError) return new ConnectError(err.message, CODES[err.code]);
  if (err instanceof ConnectError) return err;
  if (signal.aborted) return ConnectError.from(signal.reason, Code.Canceled);
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectError(`${rpc} failed: ${message.split("\n")[0]}`, Code.Internal);
}
