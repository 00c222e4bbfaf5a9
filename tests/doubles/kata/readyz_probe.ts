/**
 * Readiness probing for tests against the kata-agent double: the double serves a container's
 * `READYZ_PORT=P` on vsock port P (no test can reach the guest's TCP port), so a lifecycle test
 * replaces the worker's `GET http://169.254.17.2:P/path` with {@link vsockHttpGet} on the VM's
 * hybrid-vsock socket.
 *
 * @module
 */
import { dialHybridVsock } from "../../../lib/kata/hvsock.ts";

export interface VsockHttpReply {
  status: number;
  body: string;
}

/** One `GET path` to guest vsock `port`; rejects when nothing listens there before the deadline. */
export async function vsockHttpGet(
  vsockSocketPath: string,
  port: number,
  path: string,
  opts: { deadlineMs?: number; signal?: AbortSignal } = {},
): Promise<VsockHttpReply> {
  const conn = await dialHybridVsock(vsockSocketPath, port, {
    deadlineMs: opts.deadlineMs ?? 1000,
    signal: opts.signal,
  });
  try {
    await conn.write(
      new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nhost: 169.254.17.2:${port}\r\n\r\n`),
    );
    const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
    const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n[\s\S]*?\r\n\r\n([\s\S]*)$/.exec(text);
    if (!m) {
      throw new Error(
        `vsock port ${port}: not an HTTP reply: ${JSON.stringify(text.slice(0, 80))}`,
      );
    }
    return { status: Number(m[1]), body: m[2] };
  } finally {
    try {
      conn.close();
    } catch {
      // closed by reading to the end
    }
  }
}
