/**
 * Reading /proc through libc: Deno refuses /proc paths without --allow-all, which the worker
 * does not run with; FFI (already granted) reads them like any file.
 *
 * @module
 */
import { closeFd, O_RDONLY, openFd, readFd, SyscallError } from "./libc.ts";

/** The text of a /proc file, or undefined when it does not exist (e.g. the process is gone). */
export async function readProcText(path: string): Promise<string | undefined> {
  let fd: number;
  try {
    fd = openFd(path, O_RDONLY);
  } catch (e) {
    // ENOENT: no such process or entry; ESRCH (3): the process died while opening.
    if (e instanceof SyscallError && (e.errno === 2 || e.errno === 3)) return undefined;
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
