/**
 * Dialing the kata agent: hybrid vsock to guest port 1024 (retried until the agent listens or the
 * deadline passes), then ttrpc on that stream.
 *
 * @module
 */
import { TtrpcClient } from "../ttrpc/client.ts";
import { AgentClient } from "./agent_client.ts";
import { dialHybridVsock } from "./hvsock.ts";

/** The guest vsock port the kata agent's ttrpc server listens on. */
export const AGENT_VSOCK_PORT = 1024;

export interface ConnectAgentOptions {
  /** Overall limit for reaching the agent (it listens only once the guest has booted). */
  deadlineMs: number;
  signal?: AbortSignal;
  /** Observes each refused attempt (for logs). */
  onRetry?: (reason: string, attempt: number) => void;
}

/**
 * Connects to the agent through the VM's hybrid-vsock socket.
 *
 * @example
 * ```ts
 * const agent = await connectAgent(`${vmDir}/clh.sock`, { deadlineMs: 60_000, signal });
 * ```
 */
export async function connectAgent(
  vsockSocketPath: string,
  opts: ConnectAgentOptions,
): Promise<AgentClient> {
  let conn: Deno.UnixConn;
  try {
    conn = await dialHybridVsock(vsockSocketPath, AGENT_VSOCK_PORT, {
      deadlineMs: opts.deadlineMs,
      signal: opts.signal,
      onRetry: opts.onRetry,
    });
  } catch (err) {
    throw new Error(
      `connecting to the kata agent (vsock port ${AGENT_VSOCK_PORT} via ${vsockSocketPath}): ` +
        `${(err as Error).message}; check the guest serial log for the boot`,
      { cause: err },
    );
  }
  return new AgentClient(new TtrpcClient(conn));
}
