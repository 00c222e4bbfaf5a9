/**
 * Preparing an actor's inputs as atelet would in a pod: the OCI bundle copied into the worker's
 * actor dir (`<actor>/bundles/main/`; the worker rewrites its config.json for kata, so the user's
 * bundle is never touched), the runtime assets resolved to absolute files, and the kata config
 * override that carries `--memory`/`--vcpus`.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { stringify } from "smol-toml";
import { readKataConfig } from "../kata/config.ts";
import type { Assets } from "./state.ts";

/** Throws a one-line error unless `dir` is an OCI bundle (config.json + rootfs/). */
export async function checkBundle(dir: string): Promise<string> {
  const abs = resolve(dir);
  const need = async (path: string, kind: "file" | "directory") => {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch {
      throw new Error(
        `${abs} is not an OCI bundle: ${path} is missing; a bundle holds config.json and rootfs/ ` +
          `(e.g. from 'umoci unpack' or 'skopeo copy' + 'umoci')`,
      );
    }
    if (kind === "file" ? !info.isFile : !info.isDirectory) {
      throw new Error(`${abs} is not an OCI bundle: ${path} is not a ${kind}`);
    }
  };
  await need(join(abs, "config.json"), "file");
  await need(join(abs, "rootfs"), "directory");
  return abs;
}

/**
 * Copies the bundle `source` to `target` (replaced when it exists): into a temp sibling first,
 * renamed when complete. Uses `cp -a --reflink=auto` (cheap on CoW filesystems).
 */
export async function copyBundle(source: string, target: string): Promise<void> {
  await Deno.mkdir(dirname(target), { recursive: true, mode: 0o700 });
  const temp = `${target}.partial-${Deno.pid}`;
  await Deno.remove(temp, { recursive: true }).catch(() => {});
  await Deno.mkdir(temp, { mode: 0o700 });
  try {
    const out = await new Deno.Command("cp", {
      args: ["-a", "--reflink=auto", "--", `${source}/.`, temp],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `copying the bundle ${source} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
      );
    }
    await Deno.remove(target, { recursive: true }).catch(() => {});
    await Deno.rename(temp, target);
  } catch (e) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw e;
  }
}

/**
 * The kata config with `memoryMiB`/`vcpus` in `[hypervisor.clh]`, keeping the base config's
 * kernel parameters. The worker reads only these keys (see lib/kata/config.ts).
 */
export async function kataConfigOverride(
  base: string | undefined,
  memoryMiB: number | undefined,
  vcpus: number | undefined,
): Promise<string> {
  const parsed = await readKataConfig(base);
  return stringify({
    hypervisor: {
      clh: {
        default_memory: memoryMiB ?? parsed.memoryMiB,
        default_vcpus: vcpus ?? parsed.vcpus,
        kernel_params: parsed.kernelParams,
      },
    },
  }) + "\n";
}

/** Throws a one-line error naming `what` and `flag` unless `path` is a readable regular file. */
export async function checkAsset(path: string, what: string, flag: string): Promise<string> {
  const abs = resolve(path);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(abs);
  } catch {
    throw new Error(
      `${what} ${abs} does not exist: pass ${flag} or set it in the config file ` +
        `(run 'ateom-microvm doctor')`,
    );
  }
  if (!info.isFile) throw new Error(`${what} ${abs} is not a regular file: pass ${flag}`);
  return abs;
}

/** Resolves a binary name through PATH (a path with `/` is taken as is); undefined if absent. */
export function which(name: string, path = Deno.env.get("PATH") ?? ""): string | undefined {
  if (name.includes("/")) return resolve(name);
  for (const dir of path.split(":").filter(Boolean)) {
    const candidate = join(dir, name);
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0) & 0o111)) return candidate;
    } catch { /* next */ }
  }
  return undefined;
}

/** The asset choices of flags and config, before checking the files. */
export interface AssetChoice {
  cloudHypervisor?: string;
  kernel?: string;
  image?: string;
  kataConfig?: string;
}

/** Checks and resolves the assets; the cloud-hypervisor binary is looked up on PATH. */
export async function resolveAssets(
  choice: Required<Omit<AssetChoice, "kataConfig">> & {
    kataConfig?: string;
  },
): Promise<Assets> {
  const ch = which(choice.cloudHypervisor);
  if (!ch) {
    throw new Error(
      `cloud-hypervisor binary ${choice.cloudHypervisor} not found on PATH: install it ` +
        `(github.com/cloud-hypervisor/cloud-hypervisor releases) or pass --cloud-hypervisor`,
    );
  }
  return {
    cloudHypervisor: await checkAsset(ch, "cloud-hypervisor binary", "--cloud-hypervisor"),
    kernel: await checkAsset(choice.kernel, "guest kernel", "--kernel"),
    image: await checkAsset(choice.image, "guest image", "--image"),
    kataConfig: choice.kataConfig
      ? await checkAsset(choice.kataConfig, "kata config", "--kata-config")
      : undefined,
  };
}
