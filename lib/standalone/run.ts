/**
 * `run NAME --bundle DIR`: boots an OCI bundle as a micro-VM actor that keeps running after the
 * command returns (its supervisor owns the VMM and the logs).
 *
 * @module
 */
import { type Command, parseFlags, UsageError } from "../cli/command.ts";
import { DEFAULT_IMAGE, DEFAULT_KERNEL, parseMemory, parseVcpus } from "./config.ts";
import { activate, type Context, loadContext, RPC_TIMEOUT_MS, usedSlots } from "./actor.ts";
import { checkBundle, copyBundle, kataConfigOverride, resolveAssets } from "./bundle.ts";
import { type ActorRecord, CONTAINER, type PortMapping, StateDir } from "./state.ts";
import { freeSlot, parsePort } from "./network.ts";
import { withActorLock } from "./lock.ts";
import { followBuildProgress } from "./build_progress.ts";
import { asUsage, interruptible, nameArgument, printResult } from "./output.ts";

/** The flags `run` and `restore` share: the runtime assets and the guest size. */
export const ASSET_FLAGS = {
  kernel: { type: "string" },
  image: { type: "string" },
  "kata-config": { type: "string" },
  "cloud-hypervisor": { type: "string" },
  memory: { type: "string" },
  vcpus: { type: "string" },
  port: { type: "string", multiple: true },
  json: { type: "boolean" },
} as const;

export const ASSET_HELP =
  `  --kernel FILE            guest kernel (config: kernel; default ${DEFAULT_KERNEL})
  --image FILE             guest image with the kata agent (config: image; default
                           ${DEFAULT_IMAGE})
  --kata-config FILE       kata configuration.toml for kernel_params and sizes (config: kata_config)
  --cloud-hypervisor FILE  the VMM binary (config: cloud_hypervisor; default cloud-hypervisor on PATH)
  --memory SIZE            guest RAM, e.g. 512M or 2G (config: memory; default the kata config's)
  --vcpus N                guest vCPUs (config: vcpus; default the kata config's)
  --port HOST:GUEST        publish guest TCP port GUEST on the host's port HOST (repeatable)
  --json                   print the result as JSON`;

type AssetValues = {
  kernel?: string;
  image?: string;
  "kata-config"?: string;
  "cloud-hypervisor"?: string;
  memory?: string;
  vcpus?: string;
  port?: string[];
};

/** Validates the size and port flags (usage errors). */
export function parseShape(values: AssetValues) {
  return asUsage(() => ({
    memoryMiB: values.memory !== undefined ? parseMemory(values.memory) : undefined,
    vcpus: values.vcpus !== undefined ? parseVcpus(values.vcpus) : undefined,
    ports: (values.port ?? []).map(parsePort) as PortMapping[],
  }));
}

/**
 * The assets of a new activation: flags, then config, then `fallback` (the recorded ones on
 * restore), then defaults. Writes the kata config override when a size is set.
 */
export async function chooseAssets(
  ctx: Context,
  name: string,
  values: AssetValues,
  shape: { memoryMiB?: number; vcpus?: number },
  fallback?: ActorRecord,
) {
  const c = ctx.config;
  const memoryMiB = shape.memoryMiB ?? c.memoryMiB ?? fallback?.memoryMiB;
  const vcpus = shape.vcpus ?? c.vcpus ?? fallback?.vcpus;
  const assets = await resolveAssets({
    cloudHypervisor: values["cloud-hypervisor"] ?? c.cloudHypervisor ??
      fallback?.assets.cloudHypervisor ?? "cloud-hypervisor",
    kernel: values.kernel ?? c.kernel ?? fallback?.assets.kernel ?? DEFAULT_KERNEL,
    image: values.image ?? c.image ?? fallback?.assets.image ?? DEFAULT_IMAGE,
    kataConfig: values["kata-config"] ?? c.kataConfig,
  });
  if (memoryMiB !== undefined || vcpus !== undefined) {
    await Deno.mkdir(ctx.state.dir(name), { recursive: true, mode: 0o700 });
    const path = ctx.state.kataConfigFile(name);
    await Deno.writeTextFile(path, await kataConfigOverride(assets.kataConfig, memoryMiB, vcpus));
    assets.kataConfig = path;
  }
  return { assets, memoryMiB, vcpus };
}

/** A fresh record for `name` (state "starting", no supervisor yet). */
export async function newRecord(
  ctx: Context,
  name: string,
  bundle: string,
  chosen: Awaited<ReturnType<typeof chooseAssets>>,
  ports: PortMapping[],
): Promise<ActorRecord> {
  return {
    version: 1,
    name,
    podUid: name,
    actor: StateDir.actorKey(name),
    state: "starting",
    bundle,
    assets: chosen.assets,
    memoryMiB: chosen.memoryMiB,
    vcpus: chosen.vcpus,
    ports,
    slot: freeSlot(await usedSlots(ctx)),
    created: new Date().toISOString(),
    lineage: [],
  };
}

/** Removes everything `run`/`restore` created for a new actor that failed to start. */
export async function forget(ctx: Context, record: ActorRecord): Promise<void> {
  await Deno.remove(ctx.state.worker.actorDir(record.actor), { recursive: true }).catch(() => {});
  await Deno.remove(ctx.state.worker.ateomDir(record.podUid), { recursive: true }).catch(() => {});
  await Deno.remove(ctx.state.dir(record.name), { recursive: true }).catch(() => {});
}

export const runCommand: Command = {
  name: "run",
  summary: "boot an OCI bundle as a micro-VM actor (standalone)",
  help: `Usage: ateom-microvm run [OPTIONS] NAME --bundle DIR

Boots the OCI bundle DIR (config.json + rootfs/) in a cloud-hypervisor micro-VM as actor NAME
and returns once it runs; a per-actor supervisor keeps it running and collects its logs
('ateom-microvm logs NAME'). NAME is a DNS-1123 label. Prints NAME.

Options:
  --bundle DIR             the OCI bundle (required)
${ASSET_HELP}

Defaults come from the config file (see docs/quickstart.md). Exit codes: 0 running,
1 failed, 2 usage error, 130 interrupted (Ctrl-C); after 1 or 130 nothing is left behind.`,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
      bundle: { type: "string" },
      ...ASSET_FLAGS,
    });
    const name = nameArgument(positionals);
    const bundleArg = values.bundle;
    if (!bundleArg) throw new UsageError("missing --bundle DIR");
    const shape = parseShape(values);
    const ctx = await loadContext();
    return await interruptible(
      this.name,
      () =>
        withActorLock(ctx.state.actorsDir(), name, async () => {
          const existing = await ctx.state.read(name);
          if (existing) {
            throw new Error(
              `an actor named ${name} already exists (${existing.state}): remove it with ` +
                `'ateom-microvm rm ${name}' or pick another name`,
            );
          }
          const bundle = await checkBundle(bundleArg);
          const chosen = await chooseAssets(ctx, name, values, shape);
          const record = await newRecord(ctx, name, bundle, chosen, shape.ports);
          try {
            await ctx.state.write(record);
            await copyBundle(bundle, ctx.state.worker.bundleDir(record.actor, CONTAINER));
            await activate(
              ctx,
              record,
              (client, signal) =>
                followBuildProgress(
                  ctx.state.logFile(name),
                  () => client.run(record, RPC_TIMEOUT_MS, signal),
                ),
            );
          } catch (e) {
            await forget(ctx, record);
            throw e;
          }
          printResult(
            values.json,
            { name, state: record.state, pid: record.supervisor?.pid },
            name,
          );
          return 0;
        }),
    );
  },
};
