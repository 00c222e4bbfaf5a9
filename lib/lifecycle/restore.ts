/**
 * The steps of RestoreWorkload: resumes a VM from the CH snapshot in restore-state/, on rootfs
 * disks reset from their golden templates (or rebuilt), with the snapshot's config repointed to
 * this node's paths and a fresh actor network, up to a connected kata agent with its clock set.
 *
 * Contract: {@link bootRestore} runs inside `MicroVmRuntime`'s common frame (lib/lifecycle/
 * runtime.ts), which owns the step timing, the unwind stack, log forwarding, readiness and
 * supervision; every step here that creates something registers its undo on `undo`.
 *
 * @module
 */
import { join } from "node:path";
import type { RestoreRequest } from "../api/runtime.ts";
import { RuntimeError } from "../api/runtime.ts";
import {
  rewriteSnapshotConfig,
  type SnapshotNetDevice,
  snapshotNetDevices,
} from "../ch/snapshot_config.ts";
import type { Logger } from "../log/logger.ts";
import { closeTapFds } from "../net/actor.ts";
import { resetFromGolden } from "../rootfs/golden.ts";
import { goldenDiskOf, rootfsDiskName, rootfsDiskOf } from "./layout.ts";
import { memoryPlan } from "./memory_mode.ts";
import {
  BASE_ID_FILE,
  type Booted,
  exists,
  LONG_CALL_MS,
  MEMORY_FILE,
  type RuntimeContext,
  type Steps,
} from "./steps.ts";
import type { Unwind } from "./unwind.ts";

/**
 * RestoreWorkload's boot: assets, restore-state check, base-id, VM run directory, rootfs disks,
 * snapshot config repoint, net devices, network, VMM, persisted activation, restore (in the
 * memory mode the CH version allows), resume, agent, guest clock.
 */
export async function bootRestore(
  rt: RuntimeContext,
  req: RestoreRequest,
  steps: Steps,
  undo: Unwind,
  log: Logger,
  signal: AbortSignal,
): Promise<Booted> {
  const source = req.paths.restoreStateDir;
  const assets = await steps.run("resolving runtime assets", () => rt.assets(req, false));
  await steps.run("checking restore-state", () => checkRestoreState(source));
  const baseId = await steps.run(
    "reading base-id",
    async () =>
      (await Deno.readTextFile(join(source, BASE_ID_FILE)).catch(() => "")).trim() ||
      req.actor.id,
  );
  const vm = await steps.run("preparing the VM run directory", () => rt.vmDir(undo));
  await steps.run("preparing rootfs disks", () => restoreDisks(rt, req, log, signal));
  await steps.run("repointing the snapshot config", async () => {
    const config = JSON.parse(await Deno.readTextFile(join(source, "config.json")));
    await rewriteSnapshotConfig(source, {
      vsockSocket: vm.vsockSocket,
      serialFile: vm.serialLog,
      disks: {
        ...guestImageRepoint(config, assets.image),
        ...Object.fromEntries(
          req.containers.map((c) => [
            rootfsDiskName(c.name),
            rootfsDiskOf(req.paths.actorDir, c.name),
          ]),
        ),
      },
    });
  });
  const devices = await steps.run(
    "reading snapshot net devices",
    async () => fdBackedNetDevices(await snapshotNetDevices(source)),
  );
  const net = await steps.run(
    "setting up the actor network",
    () => rt.setupNet(undo, devices[0]?.queuePairs ?? 1),
  );
  const vmm = await steps.run(
    "launching cloud-hypervisor",
    () => rt.launch(assets, vm, undo, req.actor.id, signal),
  );
  const plan = memoryPlan(vmm.version.major, rt.opts.memoryRestoreMode);
  const state = await steps.run(
    "recording the activation",
    () =>
      rt.record(req, vm, vmm, undo, {
        baseId,
        restoreSource: source,
        memoryMode: plan.mode,
        atCheckpoint: plan.atCheckpoint,
      }),
  );
  await steps.run(`restoring the VM (${plan.mode})`, async () => {
    try {
      await vmm.client.restore(
        {
          source_url: `file://${source}`,
          memory_restore_mode: plan.mode,
          net_fds: devices.map((d) => ({ id: d.id, num_fds: net.tapFds.length })),
        },
        devices.length > 0 ? net.tapFds : [],
        { signal, timeoutMs: LONG_CALL_MS },
      );
    } finally {
      closeTapFds(net.tapFds.splice(0));
    }
  });
  await steps.run("resuming the VM", () => vmm.client.resume({ signal }));
  const agent = await steps.run(
    "dialing the kata agent",
    () => rt.dialAgent(vm, undo, signal, log),
  );
  await steps.run(
    "setting the guest clock",
    () => agent.setGuestDateTime(new Date(), { signal }),
  );
  return {
    act: { state, client: vmm.client, vmm, agent },
    vm,
    outcome: {
      memory_restore_mode: plan.mode,
      at_checkpoint: plan.atCheckpoint,
      ch_version: vmm.version.version,
    },
  };
}

async function restoreDisks(
  rt: RuntimeContext,
  req: RestoreRequest,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  for (const c of req.containers) {
    const disk = rootfsDiskOf(req.paths.actorDir, c.name);
    const golden = goldenDiskOf(req.paths.actorDir, c.name);
    if (await exists(golden)) {
      await resetFromGolden(golden, disk);
      log.info("reset rootfs disk from its golden template", { container: c.name });
    } else {
      await rt.buildDisks({ ...req, containers: [c] }, log, signal);
    }
  }
}

/**
 * The repoint of the snapshot's read-only guest image (vda) to this node's `image` asset, by
 * the basename config.json records; nothing when no image is given or it is already there.
 */
export function guestImageRepoint(config: unknown, image: string): Record<string, string> {
  if (!image) return {};
  const disks = ((config as { disks?: { path?: unknown; readonly?: unknown }[] })?.disks) ?? [];
  const current = disks.find((d) => d.readonly === true && typeof d.path === "string");
  if (!current || current.path === image) return {};
  const path = current.path as string;
  return { [path.slice(path.lastIndexOf("/") + 1)]: image };
}

/** Throws FAILED_PRECONDITION unless restore-state/ holds a CH snapshot. */
async function checkRestoreState(dir: string): Promise<void> {
  const missing = [];
  for (const name of ["config.json", "state.json", MEMORY_FILE]) {
    if (!(await exists(join(dir, name)))) missing.push(name);
  }
  if (missing.length > 0) {
    throw new RuntimeError(
      "FAILED_PRECONDITION",
      `${dir} lacks ${
        missing.join(", ")
      }: download the checkpoint into restore-state/ before RestoreWorkload`,
    );
  }
}

/**
 * The snapshot's net devices that need tap fds on restore: at most one (the actor network gives
 * the VM one device, as upstream does); more answer UNIMPLEMENTED naming them.
 */
export function fdBackedNetDevices(devices: SnapshotNetDevice[]): SnapshotNetDevice[] {
  const fdBacked = devices.filter((d) => d.fdBacked);
  if (fdBacked.length > 1) {
    throw new RuntimeError(
      "UNIMPLEMENTED",
      `the snapshot has ${fdBacked.length} fd-backed net devices (${
        fdBacked.map((d) => d.id).join(", ")
      }); the micro-VM runtime restores exactly one (the actor network): checkpoint a VM with a single network device`,
    );
  }
  return fdBacked;
}
