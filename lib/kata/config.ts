/**
 * The few values the worker takes from a kata `configuration.toml`, and the guest kernel
 * parameters it adds.
 *
 * The worker boots cloud-hypervisor itself (no kata shim), so from kata's config it needs only the
 * guest size and the agent's kernel parameters: `[hypervisor.clh] default_memory` (MiB),
 * `default_vcpus` and `kernel_params`. Every other key is ignored, so any kata release's file
 * parses. Absent or non-positive sizes fall back to 2048 MiB / 1 vCPU (kata's `-1` vCPUs, "all
 * host CPUs", is not supported).
 *
 * @module
 */
import { parse, TomlError } from "smol-toml";

export interface KataConfig {
  /** Guest RAM in MiB. */
  memoryMiB: number;
  /** Guest vCPUs. */
  vcpus: number;
  /** Kernel parameters for the agent (appended to the VMM payload's cmdline). */
  kernelParams: string;
}

export const DEFAULT_MEMORY_MIB = 2048;
export const DEFAULT_VCPUS = 1;
/** The guest vsock port kata's debug console listens on when enabled. */
export const DEBUG_CONSOLE_PORT = 1026;

function integerOrDefault(value: unknown, key: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = typeof value === "bigint" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n)) {
    throw new Error(
      `kata config: [hypervisor.clh] ${key} must be an integer, got ${
        JSON.stringify(String(value))
      }`,
    );
  }
  return n > 0 ? n : fallback;
}

/** Parses a configuration.toml's text. Throws one line naming the problem on invalid TOML/types. */
export function parseKataConfig(text: string): KataConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    const detail = err instanceof TomlError ? `line ${err.line}: ${err.message.split("\n")[0]}` : (
      err as Error
    ).message;
    throw new Error(`kata config: invalid TOML (${detail}); fix the file or pass another config`);
  }
  const hypervisor = doc.hypervisor as Record<string, unknown> | undefined;
  const clh = (hypervisor?.clh ?? {}) as Record<string, unknown>;
  const kernelParams = clh.kernel_params ?? "";
  if (typeof kernelParams !== "string") {
    throw new Error("kata config: [hypervisor.clh] kernel_params must be a string");
  }
  return {
    memoryMiB: integerOrDefault(clh.default_memory, "default_memory", DEFAULT_MEMORY_MIB),
    vcpus: integerOrDefault(clh.default_vcpus, "default_vcpus", DEFAULT_VCPUS),
    kernelParams: kernelParams.trim(),
  };
}

/** Reads and parses a configuration.toml; no path means all defaults. */
export async function readKataConfig(path: string | undefined): Promise<KataConfig> {
  if (!path) return parseKataConfig("");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`kata config: reading ${path}: ${(err as Error).message}`);
  }
  try {
    return parseKataConfig(text);
  } catch (err) {
    throw new Error(`${(err as Error).message} (${path})`);
  }
}

function tokens(params: string): string[] {
  return params.split(/\s+/).filter((t) => t !== "");
}

/**
 * Enables the agent's debug console on vsock port 1026 (a root shell for diagnostics):
 * `agent.debug_console agent.debug_console_vport=1026`. The agent binds the vsock listener only
 * with a vport. Idempotent; an existing vport setting is kept.
 */
export function withDebugConsole(kernelParams: string): string {
  const out = tokens(kernelParams);
  if (!out.includes("agent.debug_console")) out.push("agent.debug_console");
  if (!out.some((t) => t.startsWith("agent.debug_console_vport="))) {
    out.push(`agent.debug_console_vport=${DEBUG_CONSOLE_PORT}`);
  }
  return out.join(" ");
}

/** Sets the agent's log level to debug (`agent.log=debug`, replacing another level). Idempotent. */
export function withAgentDebug(kernelParams: string): string {
  const out = tokens(kernelParams);
  const at = out.findIndex((t) => t.startsWith("agent.log="));
  if (at < 0) out.push("agent.log=debug");
  else out[at] = "agent.log=debug";
  return out.join(" ");
}
