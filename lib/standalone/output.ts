/**
 * Output helpers of the standalone commands: JSON or text results, aligned tables, short
 * durations, and turning validation errors into usage errors (exit 2), e.g. of the NAME argument.
 *
 * @module
 */
import { expectPositionals, UsageError } from "../cli/command.ts";
import { formatBytes } from "../cli/progress.ts";
import { InterruptedError } from "./client.ts";
import { validateName } from "./config.ts";

export { formatBytes };

/** Runs `fn`, rethrowing any error as a {@link UsageError} with the same message. */
export function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError((e as Error).message);
  }
}

/** The single NAME argument of an actor command, validated; a usage error otherwise. */
export function nameArgument(positionals: string[]): string {
  const [name] = expectPositionals(positionals, ["name"]);
  return asUsage(() => validateName(name));
}

/** Prints `value` as one JSON line when `json`, else `text`. */
export function printResult(json: boolean | undefined, value: unknown, text: string): void {
  console.log(json ? JSON.stringify(value) : text);
}

/** Left-aligned columns separated by three spaces; the header row first. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows]
    .map((r) => r.map((cell, i) => i === r.length - 1 ? cell : cell.padEnd(widths[i])).join("   "))
    .join("\n");
}

/** `3725` → `"1h2m"`, `59` → `"59s"`, `90061` → `"1d1h"`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/** Exit code of a command the user interrupted (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

/**
 * Runs a command body; an {@link InterruptedError} becomes its one-line message and exit code 130
 * instead of an error.
 */
export async function interruptible(command: string, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof InterruptedError)) throw e;
    console.error(`ateom-microvm ${command}: ${e.message}`);
    return EXIT_INTERRUPTED;
  }
}
