/**
 * Snapshot and restore through the CH double with its counting null guest: a round trip keeps
 * the guest's state, the double refuses what CH would (leftover vsock socket, changed disk,
 * incomplete memory image), and OnDemand restores behave per version (v52 delta snapshots that
 * need a merge, v53+ snapshots refused until the background fill completes).
 */
import { assert, assertEquals, assertMatch, assertRejects } from "../assert.ts";
import { ChTransportError, isRestoreInProgress } from "../../lib/ch/client.ts";
import { rewriteSnapshotConfig, snapshotNetDevices } from "../../lib/ch/snapshot_config.ts";
import { dataBytes } from "../../lib/sparse/extents.ts";
import { copyRegions } from "../../lib/sparse/copy.ts";
import type { VmConfig } from "../../lib/ch/types.ts";
import { closeFd, O_RDWR, openFd } from "../../lib/ffi/libc.ts";
import { type DoubleEnv, makeAssets, startDouble, vsockRequest } from "./harness.ts";

interface Ctx {
  dir: string;
  config: VmConfig;
  vmms: Awaited<ReturnType<typeof startDouble>>["vmm"][];
  /** Taps stand-ins: any fds do for the double. */
  fd: number;
}

async function withAssets(fn: (ctx: Ctx) => Promise<void>): Promise<void> {
  const { dir, config } = await makeAssets();
  const ctx: Ctx = { dir, config, vmms: [], fd: openFd("/dev/null", O_RDWR) };
  try {
    await fn(ctx);
  } finally {
    for (const vmm of ctx.vmms) await vmm.kill();
    closeFd(ctx.fd);
    await Deno.remove(dir, { recursive: true });
  }
}

async function launch(ctx: Ctx, env: DoubleEnv = {}) {
  const { vmm } = await startDouble(ctx.dir, env, `api${ctx.vmms.length}`);
  ctx.vmms.push(vmm);
  return vmm;
}

const count = async (ctx: Ctx) =>
  (await vsockRequest(ctx.config.vsock!.socket, 1024)).split("\n")[1];

/** Boots a VM with one fd-backed net, counts twice, pauses and snapshots into `snap`. */
async function bootAndSnapshot(ctx: Ctx, env: DoubleEnv = {}, snap = "snap") {
  const vmm = await launch(ctx, env);
  await vmm.client.create(ctx.config);
  await vmm.client.addNet({ mac: "02:00:00:00:00:01" }, [ctx.fd]);
  await vmm.client.boot();
  assertEquals(await count(ctx), "count=0 boots=1 restores=0");
  assertEquals(await count(ctx), "count=1 boots=1 restores=0");
  await vmm.client.pause();
  await Deno.mkdir(`${ctx.dir}/${snap}`);
  await vmm.client.snapshot(`${ctx.dir}/${snap}`);
  return vmm;
}

/** A fresh VMM restoring `snap` with fresh fds for every fd-backed net. */
async function restore(ctx: Ctx, snap: string, mode: "Copy" | "OnDemand", env: DoubleEnv = {}) {
  const vmm = await launch(ctx, env);
  const nets = (await snapshotNetDevices(`${ctx.dir}/${snap}`)).filter((n) => n.fdBacked);
  const fds = nets.flatMap((n) => Array(n.queuePairs).fill(ctx.fd));
  await vmm.client.restore({
    source_url: `file://${ctx.dir}/${snap}`,
    memory_restore_mode: mode,
    net_fds: nets.map((n) => ({ id: n.id, num_fds: n.queuePairs })),
  }, fds);
  return vmm;
}

Deno.test("ch snapshot: a CH-shaped sparse snapshot restores with the guest's state", async () => {
  await withAssets(async (ctx) => {
    const first = await bootAndSnapshot(ctx);
    const snap = `${ctx.dir}/snap`;
    const config = JSON.parse(await Deno.readTextFile(`${snap}/config.json`));
    assertEquals(config.net[0].id, "_net2");
    assertEquals(config.net[0].num_queues, 2);
    assertEquals(config.net[0].fds.length, 1);
    assertEquals(config.disks[1].queue_size, 128);
    assertEquals(config.net[0].offload_tso, true, "CH's defaults are filled in");
    assertEquals(await snapshotNetDevices(snap), [
      { id: "_net2", queuePairs: 1, mac: "02:00:00:00:00:01", fdBacked: true },
    ]);
    // Sparse: 64 MiB apparent, only the header and guest-state pages hold data.
    assertEquals(Deno.statSync(`${snap}/memory-ranges`).size, 64 << 20);
    assert(await dataBytes(`${snap}/memory-ranges`) <= 64 * 1024);

    // SIGKILL leaves the vsock socket behind: the restore's bind fails as with CH.
    await first.kill();
    await assertRejects(
      () => restore(ctx, "snap", "Copy"),
      /500: The VM could not be restored: Error from device manager: Cannot create virtio-vsock device: bind .*vsock.sock/,
    );
    await Deno.remove(ctx.config.vsock!.socket);
    // net_fds must cover the fd-backed net with its fd count.
    const bare = await launch(ctx);
    await assertRejects(
      () => bare.client.restore({ source_url: `file://${snap}`, memory_restore_mode: "Copy" }, []),
      /400: The VM could not be restored: Failed to validate config: Net id _net2 is associated with FDs and is required/,
    );
    await assertRejects(
      () =>
        bare.client.restore({
          source_url: `file://${snap}`,
          net_fds: [{ id: "_net2", num_fds: 2 }],
        }, [ctx.fd, ctx.fd]),
      /Number of Net FDs passed for '_net2' during Restore: 2. Expected: 1/,
    );
    const second = await restore(ctx, "snap", "Copy");
    assertEquals(await second.client.state(), "Paused");
    assertEquals(
      await vsockRequest(ctx.config.vsock!.socket, 1024),
      "",
      "a paused guest answers nothing",
    );
    await second.client.resume();
    assertEquals(await count(ctx), "count=2 boots=1 restores=1");
    const info = await second.client.info();
    assertEquals(info.config.disks!.map((d) => d.id), ["_disk0", "_disk1"]);
  });
});

Deno.test("ch snapshot: restore refuses a changed writable disk and incomplete memory", async () => {
  await withAssets(async (ctx) => {
    const first = await bootAndSnapshot(ctx);
    await first.client.shutdownVmm();
    await first.exited;
    const snap = `${ctx.dir}/snap`;
    const rootfs = `${ctx.dir}/rootfs-web.img`;
    const original = await Deno.readFile(rootfs);

    const changed = original.slice();
    changed[4 << 20] = 1;
    await Deno.writeFile(rootfs, changed);
    await assertRejects(
      () => restore(ctx, "snap", "Copy"),
      /Cannot restore VM: disk .*rootfs-web.img \(_disk1\) differs from its content at snapshot time/,
    );
    // Zeros written over a hole are the same content.
    await Deno.writeFile(rootfs, original);

    const ranges = `${snap}/memory-ranges`;
    await Deno.rename(ranges, `${ranges}.orig`);
    await Deno.copyFile(`${ranges}.orig`, ranges);
    await Deno.truncate(ranges, 32 << 20);
    await assertRejects(
      () => restore(ctx, "snap", "Copy"),
      /memory-ranges is 33554432 bytes, expected 67108864 \(truncated image\)/,
    );
    await Deno.truncate(ranges, 0);
    await Deno.truncate(ranges, 64 << 20);
    await assertRejects(() => restore(ctx, "snap", "Copy"), /memory image has no boot header page/);
    await Deno.rename(`${ranges}.orig`, ranges);

    // Repointed paths are reopened verbatim: a rootfs moved elsewhere restores once repointed.
    await Deno.mkdir(`${ctx.dir}/actor2`);
    await Deno.rename(rootfs, `${ctx.dir}/actor2/rootfs-web.img`);
    await rewriteSnapshotConfig(snap, {
      disks: { "rootfs-web.img": `${ctx.dir}/actor2/rootfs-web.img` },
      vsockSocket: `${ctx.dir}/actor2/vsock.sock`,
      serialFile: `${ctx.dir}/actor2/serial.log`,
    });
    const vmm = await restore(ctx, "snap", "Copy");
    await vmm.client.resume();
    const line = await vsockRequest(`${ctx.dir}/actor2/vsock.sock`, 1024);
    assertEquals(line.split("\n")[1], "count=2 boots=1 restores=1");
    assertMatch(await Deno.readTextFile(`${ctx.dir}/actor2/serial.log`), /^restored count=2\n$/);
  });
});

Deno.test("ch snapshot: v52 OnDemand restores snapshot only touched pages, a merge makes them whole", async () => {
  await withAssets(async (ctx) => {
    const env = { CH_DOUBLE_VERSION: "52" };
    const first = await bootAndSnapshot(ctx, env, "base");
    await first.client.shutdownVmm();
    const second = await restore(ctx, "base", "OnDemand", env);
    assertEquals(second.version.major, 52);
    await second.client.resume();
    assertEquals(await count(ctx), "count=2 boots=1 restores=1");
    await second.client.pause();
    await Deno.mkdir(`${ctx.dir}/delta`);
    await second.client.snapshot(`${ctx.dir}/delta`);
    await second.client.shutdownVmm();
    // The delta lacks the pages not touched since the restore.
    assert(
      await dataBytes(`${ctx.dir}/delta/memory-ranges`) <
        await dataBytes(`${ctx.dir}/base/memory-ranges`),
    );
    await assertRejects(
      () => restore(ctx, "delta", "Copy", env),
      /memory image has no boot header page/,
    );
    // The worker's job: merge the delta onto the restore source, then it is complete.
    await copyRegions(`${ctx.dir}/delta/memory-ranges`, `${ctx.dir}/base/memory-ranges`);
    await Deno.copyFile(`${ctx.dir}/delta/config.json`, `${ctx.dir}/base/config.json`);
    await Deno.copyFile(`${ctx.dir}/delta/state.json`, `${ctx.dir}/base/state.json`);
    const third = await restore(ctx, "base", "Copy", env);
    await third.client.resume();
    assertEquals(await count(ctx), "count=3 boots=1 restores=2");
  });
});

Deno.test("ch snapshot: v53+ OnDemand restores refuse snapshots until the background fill completes", async () => {
  await withAssets(async (ctx) => {
    const env = { CH_DOUBLE_VERSION: "53", CH_DOUBLE_FILL_REFUSALS: "2" };
    const first = await bootAndSnapshot(ctx, env, "base");
    await first.client.shutdownVmm();
    const second = await restore(ctx, "base", "OnDemand", env);
    await second.client.resume();
    assertEquals(await count(ctx), "count=2 boots=1 restores=1");
    await second.client.pause();
    await Deno.mkdir(`${ctx.dir}/next`);
    for (let i = 0; i < 2; i++) {
      const e = await assertRejects(
        () => second.client.snapshot(`${ctx.dir}/next`),
        /500: The VM could not be snapshotted: VM on-demand memory restore is still in progress/,
      );
      assert(isRestoreInProgress(e));
    }
    assert(!isRestoreInProgress(await assertRejects(() => second.client.snapshot("/nonexistent"))));
    await second.client.snapshot(`${ctx.dir}/next`);
    await second.client.shutdownVmm();
    // Complete on its own: restorable without any merge.
    const third = await restore(ctx, "next", "Copy", env);
    await third.client.resume();
    assertEquals(await count(ctx), "count=3 boots=1 restores=2");
  });
});

Deno.test("ch snapshot: an injected snapshot failure leaves a partial dir and files are created exclusively", async () => {
  await withAssets(async (ctx) => {
    const vmm = await launch(ctx, { CH_DOUBLE_FAIL: "snapshot" });
    await vmm.client.create(ctx.config);
    await vmm.client.boot();
    await vmm.client.pause();
    await Deno.mkdir(`${ctx.dir}/snap`);
    await assertRejects(
      () => vmm.client.snapshot(`${ctx.dir}/snap`),
      /injected failure \(CH_DOUBLE_FAIL=snapshot\)/,
    );
    assertEquals([...Deno.readDirSync(`${ctx.dir}/snap`)].map((e) => e.name), ["config.json"]);
    const ok = await launch(ctx);
    await Deno.remove(ctx.config.vsock!.socket);
    await ok.client.create(ctx.config);
    await ok.client.boot();
    await ok.client.pause();
    await assertRejects(
      () => ok.client.snapshot(`${ctx.dir}/snap`),
      /Cannot send VM snapshot: Error creating VM config.json snapshot file: .*exists/i,
    );
  });
});

Deno.test("ch snapshot: an OnDemand VMM whose restore source vanished dies like a faulting VMM", async () => {
  await withAssets(async (ctx) => {
    const env = { CH_DOUBLE_VERSION: "52" };
    const first = await bootAndSnapshot(ctx, env, "base");
    await first.client.shutdownVmm();
    const second = await restore(ctx, "base", "OnDemand", env);
    await Deno.rename(`${ctx.dir}/base`, `${ctx.dir}/moved`);
    await Deno.mkdir(`${ctx.dir}/next`);
    const e = await assertRejects(() => second.client.snapshot(`${ctx.dir}/next`));
    assert(e instanceof ChTransportError && e.reason === "closed", e.message);
    assertEquals((await second.exited).code, 1);
  });
});
