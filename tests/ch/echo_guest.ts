/**
 * A test guest for the CH double (loaded through CH_DOUBLE_GUEST): vsock port 7 echoes one line
 * prefixed with the kernel command line and disk count it was booted with.
 */
import type { Guest, GuestContext, GuestFactory } from "../doubles/guest.ts";

const factory: GuestFactory = (): Guest => {
  let ctx: GuestContext | undefined;
  return {
    boot(c) {
      ctx = c;
      return Promise.resolve();
    },
    restore(c) {
      ctx = c;
      return Promise.resolve();
    },
    pause() {},
    resume() {},
    snapshot: () => new Uint8Array(),
    vsockConnect(port) {
      if (port !== 7) return undefined;
      return async (conn) => {
        const buf = new Uint8Array(256);
        const n = await conn.read(buf);
        const line = new TextDecoder().decode(buf.subarray(0, n ?? 0));
        await conn.write(
          new TextEncoder().encode(`[${ctx!.cmdline}|${ctx!.disks.length}] ${line}`),
        );
        conn.close();
      };
    },
    shutdown: () => Promise.resolve(),
  };
};

export default factory;
