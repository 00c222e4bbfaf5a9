/**
 * What `/proc` says about the supervisor and its VMM: identity of a process (pid + start time, so
 * a recycled pid is never mistaken for ours), its children, and resident memory. Parsers are pure;
 * the readers return undefined for a process that is gone.
 *
 * @module
 */

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

/**
 * Reads a small /proc file through libc (synchronous open/read/close): Deno refuses
 * `/proc/<pid>/...` without --allow-all. Throws when it cannot be read.
 */
export function readProcFile(path: string): Promise<string> {
  const lib = procLib();
  const fd = lib.open(new TextEncoder().encode(path + "\0"), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Promise.reject(new Error(`cannot open ${path}`));
  try {
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    while (true) {
      const n = Number(lib.read(fd, buf, BigInt(buf.length)));
      if (n < 0) return Promise.reject(new Error(`cannot read ${path}`));
      if (n === 0) break;
      chunks.push(buf.slice(0, n));
    }
    return Promise.resolve(new TextDecoder().decode(concat(chunks)));
  } finally {
    lib.close(fd);
  }
}

/** Reads `/proc/<pid>/stat`; undefined when the process is gone. */
export async function readStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseStat(await readProcFile(`/proc/${pid}/stat`));
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` is still the process that started at `startTicks` (not exited, not a zombie,
 * not a recycled pid).
 */
export async function isAlive(pid: number, startTicks: number): Promise<boolean> {
  const stat = await readStat(pid);
  return !!stat && stat.startTicks === startTicks && stat.state !== "Z" && stat.state !== "X";
}

const PROC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
} as const;
let lib: Deno.DynamicLibrary<typeof PROC_SYMBOLS>["symbols"] | undefined;
const O_RDONLY = 0;
const O_CLOEXEC = 0x80000;

function procLib() {
  return lib ??= Deno.dlopen("libc.so.6", PROC_SYMBOLS).symbols;
}
/** Offset of `d_name` in glibc's `struct dirent` on LP64 Linux. */
const D_NAME_OFFSET = 19;

/** The entry names of a directory through libc (Deno refuses to list `/proc`). */
export function listDir(path: string): string[] {
  const dirLib = procLib();
  const dir = dirLib.opendir(new TextEncoder().encode(path + "\0"));
  if (dir === null) throw new Error(`cannot list ${path}`);
  const names: string[] = [];
  try {
    for (let ent = dirLib.readdir(dir); ent !== null; ent = dirLib.readdir(dir)) {
      names.push(new Deno.UnsafePointerView(ent).getCString(D_NAME_OFFSET));
    }
  } finally {
    dirLib.closedir(dir);
  }
  return names;
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
    return parseRssBytes(await readProcFile(`/proc/${pid}/status`));
  } catch {
    return undefined;
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
