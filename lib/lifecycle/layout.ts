/**
 * Where an activation's files live: the VM run directory under the worker's own directory (short
 * paths: unix socket paths must fit 107 bytes) and the per-container disks in the actor
 * directory. Pure string functions.
 *
 * - `<ateomDir>/vm/clh-api.sock`: cloud-hypervisor's REST API socket
 * - `<ateomDir>/vm/kata.hvsock`: the hybrid-vsock socket (the kata agent behind it)
 * - `<ateomDir>/vm/serial.log`: the guest serial console
 * - `<ateomDir>/current-actor`: the actor dir of the activation in progress (found at startup)
 * - `<actorDir>/rootfs-<container>.ext4`, `<actorDir>/golden-rootfs-<container>.ext4`
 * - `<actorDir>/microvm-state.json`: the persisted activation state (./state.ts)
 *
 * @module
 */
import { join } from "node:path";
import { validateContainerId } from "../kata/specconv.ts";

/** Longest unix socket path (sun_path minus the NUL). */
export const MAX_SOCKET_PATH = 107;

/** The VM run directory's files. */
export interface VmDir {
  dir: string;
  apiSocket: string;
  vsockSocket: string;
  serialLog: string;
}

/** The VM run directory of the worker whose private directory is `ateomDir`. */
export function vmDirOf(ateomDir: string): VmDir {
  const dir = join(ateomDir, "vm");
  const out = {
    dir,
    apiSocket: join(dir, "clh-api.sock"),
    vsockSocket: join(dir, "kata.hvsock"),
    serialLog: join(dir, "serial.log"),
  };
  for (const path of [out.apiSocket, out.vsockSocket]) {
    if (new TextEncoder().encode(path).length > MAX_SOCKET_PATH) {
      throw new Error(
        `socket path ${path} is longer than a unix socket allows (${MAX_SOCKET_PATH} bytes): use a shorter --base-path`,
      );
    }
  }
  return out;
}

/** `<ateomDir>/current-actor`: names the actor dir whose VM this worker runs. */
export function currentActorFile(ateomDir: string): string {
  return join(ateomDir, "current-actor");
}

/** `<actorDir>/microvm-state.json`. */
export function stateFileOf(actorDir: string): string {
  return join(actorDir, "microvm-state.json");
}

/** The file name of `container`'s rootfs disk (config.json repoints disks by it). */
export function rootfsDiskName(container: string): string {
  return `rootfs-${container}.ext4`;
}

/** The writable rootfs disk of `container`: `<actorDir>/rootfs-<container>.ext4`. */
export function rootfsDiskOf(actorDir: string, container: string): string {
  return join(actorDir, rootfsDiskName(container));
}

/** Its golden template: `<actorDir>/golden-rootfs-<container>.ext4`. */
export function goldenDiskOf(actorDir: string, container: string): string {
  return join(actorDir, `golden-rootfs-${container}.ext4`);
}

/**
 * The agent's container id (and exec id) for `container`: the name itself, or `ctr-<name>` for
 * a one-letter name the agent refuses. A function of the name only, so a guest restored under
 * another actor id still finds its containers.
 */
export function agentContainerId(container: string): string {
  const id = container.length >= 2 ? container : `ctr-${container}`;
  validateContainerId(id);
  return id;
}
