/**
 * Runtime assets of an activation, from the request's `runtime_asset_paths` with the worker's
 * flags as fallbacks. Pure.
 *
 * @module
 */
import { RuntimeError } from "../api/runtime.ts";

export const ASSET_CH = "cloud-hypervisor";
export const ASSET_KERNEL = "kata-kernel";
export const ASSET_IMAGE = "kata-image";
export const ASSET_KATA_CONFIG = "kata-config";

/** The worker's fallbacks (`serve --cloud-hypervisor-binary`, `--kata-config`). */
export interface AssetFallbacks {
  chBinary?: string;
  kataConfig?: string;
}

export interface Assets {
  chBinary: string;
  kernel: string;
  image: string;
  /** Absent: kata defaults (2048 MiB, 1 vCPU, no kernel params). */
  kataConfig?: string;
}

/**
 * The assets to use. Throws INVALID_ARGUMENT naming the key when the kernel or image is missing
 * (`needBoot`: Run needs both; a restore reopens the snapshot's own paths), or when no
 * cloud-hypervisor binary is known.
 */
export function resolveAssets(
  paths: Record<string, string>,
  fallbacks: AssetFallbacks,
  needBoot: boolean,
): Assets {
  const get = (key: string) => (paths[key] ?? "").trim();
  const missing = needBoot ? [ASSET_KERNEL, ASSET_IMAGE].filter((k) => get(k) === "") : [];
  if (missing.length > 0) {
    throw new RuntimeError(
      "INVALID_ARGUMENT",
      `runtime_asset_paths lacks ${
        missing.map((k) => JSON.stringify(k)).join(" and ")
      }: the micro-VM runtime boots the guest kernel and image itself; atelet must provide them`,
    );
  }
  const chBinary = get(ASSET_CH) || fallbacks.chBinary || "";
  if (!chBinary) {
    throw new RuntimeError(
      "INVALID_ARGUMENT",
      `runtime_asset_paths lacks "${ASSET_CH}" and the worker has no --cloud-hypervisor-binary: pass one of them`,
    );
  }
  return {
    chBinary,
    kernel: get(ASSET_KERNEL),
    image: get(ASSET_IMAGE),
    kataConfig: get(ASSET_KATA_CONFIG) || fallbacks.kataConfig || undefined,
  };
}
