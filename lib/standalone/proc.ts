/**
 * What `/proc` says about the supervisor and its VMM: identity of a process (pid + start time, so
 * a recycled pid is never mistaken for ours), its children, and resident memory. Parsers are pure;
 * the readers (through lib/ffi/procfs.ts) return undefined for a process that is gone.
 *
 * @module
 */
import { listDir, readProcText } from "../ffi/procfs.ts";

/** The fields of `/proc/<pid>/stat` used here. */
export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** Clock ticks since boot when the process started (field 22). */
  startTicks: number;
}

/**
 * Parses `/proc/<pid>/stat`. `comm` may hold spaces and parentheses, so the fields after it are
 * found from the last `)`.
 */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) throw new Error(`malformed /proc stat line: ${text.slice(0, 60)}`);
  const rest = text.slice(close + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state); field N is rest[N - 3].
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: rest[0],
    ppid: Number(rest[1]),
    startTicks: Number(rest[19]),
  };
}

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

/** Reads `/proc/<pid>/stat`; undefined when the process is gone. */
export function readStat(pid: number): Promise<ProcStat | undefined> {
  return readParsed(`/proc/${pid}/stat`, parseStat);
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
export function rssBytes(pid: number): Promise<number | undefined> {
  return readParsed(`/proc/${pid}/status`, parseRssBytes);
}

/** `parse` of the text of `path`; undefined when it is gone or cannot be read or parsed. */
async function readParsed<T>(path: string, parse: (text: string) => T): Promise<T | undefined> {
  try {
    const text = await readProcText(path);
    return text === undefined ? undefined : parse(text);
  } catch {
    return undefined;
  }
}
