/**
 * What `/proc` says about the supervisor and its VMM: whether a process is still the one we
 * started (pid + start time, so a recycled pid is never mistaken for ours), its children, resident
 * memory and capabilities. Parsers are pure; the readers (on lib/ffi/procfs.ts) return undefined
 * for a process that is gone.
 *
 * @module
 */
import { listDir, readProcText, readStat } from "../ffi/procfs.ts";

/** `VmRSS` of `/proc/<pid>/status` in bytes; 0 when absent (kernel threads, zombies). */
export function parseRssBytes(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** `CapEff` of `/proc/<pid>/status` as a bigint mask. */
export function parseCapEff(status: string): bigint {
  const m = /^CapEff:\s+([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/**
 * Whether `pid` is still the process that started at `startTicks` (not exited, not a zombie,
 * not a recycled pid).
 */
export async function isAlive(pid: number, startTicks: number): Promise<boolean> {
  const stat = await readStat(pid);
  return !!stat && stat.startTicks === startTicks && stat.state !== "Z" && stat.state !== "X";
}

/** The pids whose parent is `pid`. */
export async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of listDir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readStat(Number(name));
    if (stat?.ppid === pid) out.push(stat.pid);
  }
  return out.sort((a, b) => a - b);
}

/** Resident memory of `pid` in bytes; undefined when it is gone. */
export async function rssBytes(pid: number): Promise<number | undefined> {
  try {
    const status = await readProcText(`/proc/${pid}/status`);
    return status === undefined ? undefined : parseRssBytes(status);
  } catch {
    return undefined;
  }
}
