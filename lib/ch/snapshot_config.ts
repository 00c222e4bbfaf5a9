/**
 * Reading and repointing a cloud-hypervisor snapshot's `config.json` (the VmConfig CH wrote at
 * snapshot time, which vm.restore reopens verbatim).
 *
 * Contract: net devices are read from the config, never assumed (CH assigns ids from one
 * counter in creation order). Rewriting changes only the vsock socket, the serial file and the
 * disks named by basename; every other field is kept as parsed (numbers, order, unknown fields),
 * and the file is replaced atomically (temp file + rename), so a failure leaves it untouched.
 *
 * @module
 */

type Json = Record<string, unknown>;

/** A net device of a snapshot: restore needs `queuePairs` tap fds for each fd-backed one. */
export interface SnapshotNetDevice {
  /** CH's device id, e.g. `_net2`. */
  id: string;
  /** num_queues / 2: one tap fd per queue pair. */
  queuePairs: number;
  mac: string;
  /** Whether CH got this device's taps as fds (these need `net_fds` on restore). */
  fdBacked: boolean;
}

/** The net devices of a parsed config.json. */
export function netDevicesOf(config: unknown): SnapshotNetDevice[] {
  const nets = (config as Json | null)?.net;
  if (nets === undefined || nets === null) return [];
  if (!Array.isArray(nets)) throw new Error("snapshot config.json: `net` is not an array");
  return nets.map((net: Json, i) => {
    const id = net.id;
    const numQueues = net.num_queues ?? 2;
    if (typeof id !== "string" || id === "") {
      throw new Error(
        `snapshot config.json: net[${i}] has no id (was the snapshot taken after boot?)`,
      );
    }
    if (typeof numQueues !== "number" || numQueues < 2 || numQueues % 2 !== 0) {
      throw new Error(
        `snapshot config.json: net ${id} has num_queues ${numQueues}, expected an even number ≥ 2`,
      );
    }
    return {
      id,
      queuePairs: numQueues / 2,
      mac: typeof net.mac === "string" ? net.mac : "",
      fdBacked: Array.isArray(net.fds),
    };
  });
}

/** The net devices of the snapshot in `snapshotDir`. */
export async function snapshotNetDevices(snapshotDir: string): Promise<SnapshotNetDevice[]> {
  return netDevicesOf(await readConfig(snapshotDir));
}

/** New host paths for a restored VM. */
export interface ConfigRepoint {
  /** The hybrid-vsock unix socket path. */
  vsockSocket?: string;
  /** The serial console file (serial mode File). */
  serialFile?: string;
  /** Disks to repoint, by the basename of their current path → new path. Each must exist. */
  disks?: Record<string, string>;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** `config` with the paths in `repoint` replaced (a deep copy; the input is not modified). */
export function repointConfig(config: unknown, repoint: ConfigRepoint): Json {
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new Error("snapshot config.json is not a JSON object");
  }
  const out = structuredClone(config) as Json;
  if (repoint.vsockSocket !== undefined) {
    const vsock = out.vsock as Json | undefined;
    if (!vsock) throw new Error("snapshot config.json has no vsock device to repoint");
    vsock.socket = repoint.vsockSocket;
  }
  if (repoint.serialFile !== undefined) {
    const serial = out.serial as Json | undefined;
    if (!serial || serial.mode !== "File") {
      throw new Error("snapshot config.json has no serial console in File mode to repoint");
    }
    serial.file = repoint.serialFile;
  }
  const disks = (out.disks as Json[] | undefined) ?? [];
  for (const [name, newPath] of Object.entries(repoint.disks ?? {})) {
    const matches = disks.filter((d) => typeof d.path === "string" && basename(d.path) === name);
    if (matches.length === 0) {
      throw new Error(
        `snapshot config.json has no disk named ${name} (disks: ${
          disks.map((d) => d.path).join(", ") || "none"
        }); the snapshot does not belong to this actor`,
      );
    }
    if (matches.length > 1) {
      throw new Error(`snapshot config.json has ${matches.length} disks named ${name}`);
    }
    matches[0].path = newPath;
  }
  return out;
}

async function readConfig(snapshotDir: string): Promise<unknown> {
  const path = `${snapshotDir}/config.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`cannot read snapshot config ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`snapshot config ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Repoints the snapshot's config.json in place (temp file + rename). */
export async function rewriteSnapshotConfig(
  snapshotDir: string,
  repoint: ConfigRepoint,
): Promise<void> {
  const updated = repointConfig(await readConfig(snapshotDir), repoint);
  const path = `${snapshotDir}/config.json`;
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(tmp, JSON.stringify(updated));
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`cannot rewrite ${path}: ${(e as Error).message}`);
  }
}
