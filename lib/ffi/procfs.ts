/**
 * Reading /proc through libc: Deno refuses /proc paths (`/proc/<pid>/...`, `/proc` itself,
 * `/proc/sys/...`) without --allow-all, which the worker does not run with; FFI (already granted)
 * reads and lists them like any file or directory.
 *
 * Contract: {@link readProcText} answers undefined for an entry that is gone (a process that exited);
 * {@link listDir} throws when the directory cannot be opened.
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
