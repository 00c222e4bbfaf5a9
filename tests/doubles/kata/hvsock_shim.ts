/**
 * A stand-in for cloud-hypervisor's hybrid-vsock socket, for tests that run a {@link Guest}
 * in-process: listens on a unix socket, reads `CONNECT <port>\n` byte by byte, and hands the
 * connection to the guest's listener after `OK <n>\n`, or closes it without a reply when nothing
 * listens on that port (as CH does).
 *
 * @module
 */
import type { Guest } from "../guest.ts";

export interface HybridVsockShim {
  readonly path: string;
  /** Stops listening and closes connections not yet handed to the guest. */
  close(): Promise<void>;
}

export function serveHybridVsock(path: string, guest: Guest): HybridVsockShim {
  const listener = Deno.listen({ transport: "unix", path });
  const handshaking = new Set<Deno.UnixConn>();
  let hostPort = 1073741824;
  const handshake = async (conn: Deno.UnixConn) => {
    handshaking.add(conn);
    try {
      let line = "";
      const one = new Uint8Array(1);
      while (!line.endsWith("\n") && line.length < 64) {
        if ((await conn.read(one)) === null) throw new Error("closed before CONNECT");
        line += String.fromCharCode(one[0]);
      }
      const m = /^CONNECT (\d+)\n$/.exec(line);
      const handler = m ? guest.vsockConnect(Number(m[1])) : undefined;
      if (!handler) throw new Error("nothing listens");
      await conn.write(new TextEncoder().encode(`OK ${hostPort++}\n`));
      handshaking.delete(conn);
      handler(conn);
    } catch {
      handshaking.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) handshake(conn);
    } catch {
      // listener closed
    }
  })();
  return {
    path,
    async close() {
      listener.close();
      for (const conn of handshaking) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await accepting;
      await Deno.remove(path).catch(() => {});
    },
  };
}
