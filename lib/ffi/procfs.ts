/**
 * Reading /proc through libc: Deno refuses /proc paths (`/proc/<pid>/...`, `/proc` itself,
 * `/proc/sys/...`) without --allow-all, which the worker does not run with; FFI (already granted)
 * reads and lists them like any file or directory.
 *
 * Contract: {@link readProcText} and {@link readStat} answer undefined for an entry that is gone (a
 * process that exited); {@link listDir} throws when the directory cannot be opened;
 * {@link parseStat} is pure and throws on a line that is not a /proc stat line.
 *
 * @module
 */
import { closeFd, cString, Errno, O_RDONLY, openFd, readFd, sym, SyscallError } from "./libc.ts";

/** The text of a /proc file, or undefined when it does not exist (e.g. the process is gone). */
export async function readProcText(path: string): Promise<string | undefined> {
  let fd: number;
  try {
    fd = openFd(path, O_RDONLY);
  } catch (e) {
    // ENOENT: no such process or entry; ESRCH: the process died while opening.
    if (e instanceof SyscallError && (e.errno === Errno.ENOENT || e.errno === Errno.ESRCH)) {
      return undefined;
    }
    throw e;
  }
  try {
    const parts: Uint8Array[] = [];
    for (;;) {
      const chunk = await readFd(fd, 65536);
      if (chunk.length === 0) break;
      parts.push(chunk);
    }
    return parts.map((p) => new TextDecoder().decode(p)).join("");
  } catch {
    // The process exited while we read.
    return undefined;
  } finally {
    closeFd(fd);
  }
}

/** Offset of `d_name` in glibc's `struct dirent` on LP64 Linux. */
const D_NAME_OFFSET = 19;

/** The entry names of a directory (including `.` and `..`), e.g. the pids under `/proc`. */
export function listDir(path: string): string[] {
  const lib = sym();
  const dir = lib.opendir(cString(path));
  if (dir === null) throw new Error(`cannot list ${path}`);
  const names: string[] = [];
  try {
    for (let ent = lib.readdir(dir); ent !== null; ent = lib.readdir(dir)) {
      names.push(new Deno.UnsafePointerView(ent).getCString(D_NAME_OFFSET));
    }
  } finally {
    lib.closedir(dir);
  }
  return names;
}

/** The fields of `/proc/<pid>/stat` this project uses. */
export interface ProcStat {
  pid: number;
  comm: string;
  /** State letter: R, S, D, Z (zombie), X (dead), ... */
  state: string;
  ppid: number;
  /** Clock ticks since boot when the process started (field 22): with the pid, its identity. */
  startTicks: number;
}

/**
 * Parses a `/proc/<pid>/stat` line. `comm` may hold spaces and parentheses, so the fields after
 * it are found from the last `)`.
 */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  // rest[0] is field 3 (state); field N is rest[N - 3].
  const rest = close > open && open >= 0 ? text.slice(close + 1).trim().split(/\s+/) : [];
  const [pid, ppid, startTicks] = [text.slice(0, open).trim(), rest[1], rest[19]];
  if (!rest[0] || ![pid, ppid, startTicks].every((f) => /^\d+$/.test(f ?? ""))) {
    throw new Error(`malformed /proc stat line: ${text.slice(0, 80)}`);
  }
  return {
    pid: Number(pid),
    comm: text.slice(open + 1, close),
    state: rest[0],
    ppid: Number(ppid),
    startTicks: Number(startTicks),
  };
}

/** `/proc/<pid>/stat` of `pid`; undefined when the process is gone or its stat cannot be read. */
export async function readStat(pid: number): Promise<ProcStat | undefined> {
  try {
    const text = await readProcText(`/proc/${pid}/stat`);
    return text === undefined ? undefined : parseStat(text);
  } catch {
    return undefined;
  }
}
