/**
 * A minimal guest for the CH double's own tests: it counts. vsock port 1024 answers one line
 * `count=<n> boots=<b> restores=<r>` and increments the count (only while running); the state
 * crossing a snapshot is that line's numbers as JSON. Serial gets `booted` / `restored` lines.
 *
 * @module
 */
import type { Guest, GuestContext, GuestFactory } from "../guest.ts";

const factory: GuestFactory = (): Guest => {
  let state = { count: 0, boots: 0, restores: 0 };
  let paused = false;
  const conns = new Set<Deno.UnixConn>();
  let ctx: GuestContext | undefined;
  return {
    boot(c) {
      ctx = c;
      state.boots++;
      c.serial(
        `booted disks=${c.disks.length} nets=${c.nets.map((n) => `${n.id}/${n.mac}`).join(",")}`,
      );
      return Promise.resolve();
    },
    restore(c, bytes) {
      ctx = c;
      state = JSON.parse(new TextDecoder().decode(bytes));
      state.restores++;
      c.serial(`restored count=${state.count}`);
      return Promise.resolve();
    },
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
    },
    snapshot() {
      return new TextEncoder().encode(JSON.stringify(state));
    },
    vsockConnect(port) {
      if (port !== 1024 || paused) return undefined;
      return (conn) => {
        conns.add(conn);
        const line = `count=${state.count} boots=${state.boots} restores=${state.restores}\n`;
        state.count++;
        conn.write(new TextEncoder().encode(line)).finally(() => {
          conns.delete(conn);
          conn.close();
        });
      };
    },
    shutdown() {
      ctx?.serial("shutdown");
      for (const c of conns) c.close();
      return Promise.resolve();
    },
  };
};

export default factory;
