/**
 * Standalone settings: where state lives and the defaults `run`/`restore`/`doctor` take from the
 * config file. Resolution order for each value: command-line flag, then the config file, then the
 * built-in default.
 *
 * Config file: `$ATEOM_MICROVM_CONFIG` when set, else `/etc/ateom-microvm/config.toml` for root and
 * `$XDG_CONFIG_HOME/ateom-microvm/config.toml` (default `~/.config`) otherwise. A missing file means
 * all defaults; an unknown key or a wrong type is an error naming the key. Keys:
 *
 * ```toml
 * state_dir = "/var/lib/ateom-microvm"
 * cloud_hypervisor = "/usr/local/bin/cloud-hypervisor"
 * kernel = "/opt/kata/share/kata-containers/vmlinux.container"
 * image = "/opt/kata/share/kata-containers/kata-containers.img"
 * kata_config = "/opt/kata/share/defaults/kata-containers/configuration-clh.toml"
 * memory = "2G"        # guest RAM: MiB as a number, or a string with M/G
 * vcpus = 2
 * snapshots = "s3://bucket/prefix/"   # where `checkpoint` writes without --to
 * ```
 *
 * State dir: `$ATEOM_MICROVM_STATE_DIR`, else the config's `state_dir`, else
 * `/var/lib/ateom-microvm` for root and `$XDG_STATE_HOME/ateom-microvm` (default
 * `~/.local/state`) otherwise.
 *
 * @module
 */
import { join } from "node:path";
import { parse, TomlError } from "smol-toml";
import { checkId } from "../paths/validate.ts";

export const CONFIG_ENV = "ATEOM_MICROVM_CONFIG";
export const STATE_DIR_ENV = "ATEOM_MICROVM_STATE_DIR";
export const SYSTEM_CONFIG = "/etc/ateom-microvm/config.toml";
export const SYSTEM_STATE_DIR = "/var/lib/ateom-microvm";
/** kata-containers' install locations, used when neither flag nor config names a file. */
export const DEFAULT_KERNEL = "/opt/kata/share/kata-containers/vmlinux.container";
export const DEFAULT_IMAGE = "/opt/kata/share/kata-containers/kata-containers.img";

/** The settings of the config file, all optional. */
export interface StandaloneConfig {
  stateDir?: string;
  cloudHypervisor?: string;
  kernel?: string;
  image?: string;
  kataConfig?: string;
  /** Guest RAM in MiB. */
  memoryMiB?: number;
  vcpus?: number;
  /** Base URI of `checkpoint` without `--to`. */
  snapshots?: string;
}

/** The process environment the paths depend on (injectable for tests). */
export interface HostEnv {
  uid: number;
  env: (name: string) => string | undefined;
}

export function hostEnv(): HostEnv {
  return { uid: Deno.uid() ?? 0, env: (name) => Deno.env.get(name) };
}

function home(host: HostEnv): string {
  return host.env("HOME") || "/root";
}

/** The config file to read (it may not exist). */
export function configPath(host: HostEnv = hostEnv()): string {
  const explicit = host.env(CONFIG_ENV);
  if (explicit) return explicit;
  if (host.uid === 0) return SYSTEM_CONFIG;
  const base = host.env("XDG_CONFIG_HOME") || join(home(host), ".config");
  return join(base, "ateom-microvm", "config.toml");
}

/** The state dir: env override, then the config, then the per-user or system default. */
export function stateDir(config: StandaloneConfig, host: HostEnv = hostEnv()): string {
  const chosen = host.env(STATE_DIR_ENV) || config.stateDir;
  if (chosen) return chosen.startsWith("/") ? chosen : join(Deno.cwd(), chosen);
  if (host.uid === 0) return SYSTEM_STATE_DIR;
  const base = host.env("XDG_STATE_HOME") || join(home(host), ".local", "state");
  return join(base, "ateom-microvm");
}

const KEYS: Record<string, keyof StandaloneConfig> = {
  state_dir: "stateDir",
  cloud_hypervisor: "cloudHypervisor",
  kernel: "kernel",
  image: "image",
  kata_config: "kataConfig",
  memory: "memoryMiB",
  vcpus: "vcpus",
  snapshots: "snapshots",
};

/**
 * Parses a memory size into MiB: a plain number is MiB, a suffix M/MiB or G/GiB scales it.
 * Throws a one-line error for anything else or a size under 64 MiB.
 *
 * @example
 * ```ts
 * parseMemory("2G"); // 2048
 * ```
 */
export function parseMemory(text: string): number {
  const m = /^(\d+)\s*(M|MiB|G|GiB)?$/i.exec(text.trim());
  if (!m) {
    throw new Error(
      `invalid memory size ${JSON.stringify(text)}: use MiB as a number, or a number with M or G`,
    );
  }
  const n = Number(m[1]) * (m[2] && m[2][0].toUpperCase() === "G" ? 1024 : 1);
  if (n < 64) throw new Error(`memory size ${JSON.stringify(text)} is too small: use 64M or more`);
  return n;
}

/** Parses a vCPU count (1..254, cloud-hypervisor's limit). */
export function parseVcpus(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 1 || n > 254) {
    throw new Error(`invalid vCPU count ${JSON.stringify(text)}: use a whole number from 1 to 254`);
  }
  return n;
}

/** Parses the config file's text; `source` names it in errors. */
export function parseConfig(text: string, source: string): StandaloneConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    const detail = e instanceof TomlError
      ? `line ${e.line}: ${e.message.split("\n")[0]}`
      : (e as Error).message;
    throw new Error(`config ${source}: invalid TOML (${detail}); fix the file`);
  }
  const config: StandaloneConfig = {};
  for (const [key, value] of Object.entries(doc)) {
    const field = KEYS[key];
    const bad = (want: string) =>
      new Error(`config ${source}: ${key} must be ${want}, got ${JSON.stringify(String(value))}`);
    if (!field) {
      throw new Error(
        `config ${source}: unknown key ${JSON.stringify(key)}; known keys: ${
          Object.keys(KEYS).join(", ")
        }`,
      );
    }
    try {
      if (field === "memoryMiB") {
        if (typeof value !== "string" && typeof value !== "number" && typeof value !== "bigint") {
          throw bad('a size such as 2048 or "2G"');
        }
        config.memoryMiB = parseMemory(String(value));
      } else if (field === "vcpus") {
        if (typeof value !== "number" && typeof value !== "bigint") throw bad("a whole number");
        config.vcpus = parseVcpus(String(value));
      } else {
        if (typeof value !== "string" || value === "") throw bad("a non-empty string");
        config[field] = value;
      }
    } catch (e) {
      const msg = (e as Error).message;
      throw msg.startsWith("config ") ? e : new Error(`config ${source}: ${key}: ${msg}`);
    }
  }
  return config;
}

/** Reads the config file; a missing file is an empty config. */
export async function loadConfig(path: string = configPath()): Promise<StandaloneConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw new Error(`config ${path}: cannot read it (${(e as Error).message})`);
  }
  return parseConfig(text, path);
}

/** Throws unless `name` can be an actor name (a DNS-1123 label: it becomes paths and ids). */
export function validateName(name: string, what = "NAME"): string {
  const problem = checkId(what, name, "label");
  if (problem) throw new NameError(problem);
  return name;
}

/** An invalid actor name (a usage error). */
export class NameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NameError";
  }
}
