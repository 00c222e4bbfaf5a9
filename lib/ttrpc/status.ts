/**
 * ttrpc call outcomes: the gRPC status codes carried in google.rpc.Status, and the error type a
 * failed call rejects with (client) or a handler throws to choose its status (server).
 *
 * @module
 */

import type { Any } from "./messages.ts";

/** gRPC status codes (google.rpc.Code). */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const CODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Code).map(([name, code]) => [code, name]),
);

/** The upper-case name of a status code, or `CODE(<n>)` for codes outside the table. */
export function codeName(code: number): string {
  return CODE_NAMES[code] ?? `CODE(${code})`;
}

/** Context a {@link TtrpcError} may carry. */
export interface TtrpcErrorOptions {
  /** google.rpc.Status details, opaque. */
  details?: Any[];
  /** "service/method" of the failed call, for the message. */
  call?: string;
  cause?: unknown;
}

/**
 * A call that ended with a non-OK status: either the server's google.rpc.Status or one made
 * locally (deadline, cancellation, size limit, connection loss).
 *
 * @example
 * ```ts
 * try {
 *   await client.call("grpc.AgentService", "CreateSandbox", payload);
 * } catch (e) {
 *   // A restored guest already has its sandbox.
 *   if (!(e instanceof TtrpcError && e.code === Code.ALREADY_EXISTS)) throw e;
 * }
 * ```
 */
export class TtrpcError extends Error {
  /** The gRPC status code. */
  readonly code: number;
  /** The status message as sent by the server (or made locally), without decoration. */
  readonly rpcMessage: string;
  /** google.rpc.Status details as received. */
  readonly details: Any[];

  constructor(code: number, rpcMessage: string, options: TtrpcErrorOptions = {}) {
    const where = options.call ? `ttrpc call ${options.call}` : "ttrpc";
    super(`${where}: ${codeName(code)}: ${rpcMessage}`, { cause: options.cause });
    this.name = "TtrpcError";
    this.code = code;
    this.rpcMessage = rpcMessage;
    this.details = options.details ?? [];
  }
}

/**
 * The connection carrying a call went away (peer closed it, I/O error, or the client was closed)
 * before the response arrived. Code is UNAVAILABLE.
 */
export class TtrpcConnectionError extends TtrpcError {
  constructor(rpcMessage: string, options: TtrpcErrorOptions = {}) {
    super(Code.UNAVAILABLE, rpcMessage, options);
    this.name = "TtrpcConnectionError";
  }
}
