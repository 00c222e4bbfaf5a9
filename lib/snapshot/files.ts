/**
 * Output files built under a temporary name beside the destination and renamed into place only
 * when complete, so a failed pack or unpack leaves nothing behind (and an existing destination
 * untouched).
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { closeFd, O_WRONLY, openFd } from "../ffi/libc.ts";

/** A unique temporary name next to `destination` (hidden, with the pid). */
export function partialPath(destination: string): string {
  return join(
    dirname(destination),
    `.${basename(destination)}.partial-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`,
  );
}

/**
 * Runs `body` with a raw write fd on a new temporary file (created with `mode`), then renames it to
 * `destination`; if `body` throws, the temporary file is removed and the error rethrown. `body`
 * must not leave I/O on the fd in flight when it settles.
 */
export async function writeViaTemp<T>(
  destination: string,
  mode: number,
  body: (fd: number) => Promise<T>,
): Promise<T> {
  const temp = partialPath(destination);
  (await Deno.open(temp, { write: true, createNew: true, mode })).close();
  let fd = -1;
  try {
    fd = openFd(temp, O_WRONLY);
    const result = await body(fd);
    const open = fd;
    fd = -1;
    closeFd(open);
    await Deno.rename(temp, destination);
    return result;
  } catch (e) {
    if (fd >= 0) closeFd(fd);
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
}
