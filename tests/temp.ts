/**
 * Temporary directories for tests: created fresh, removed with everything in them afterwards,
 * also when the test fails.
 *
 * @module
 */

/** Runs `fn` with a new temp dir named `<prefix>…`; removes the dir when `fn` settles. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs `fn` with a new temp dir on /dev/shm (a tmpfs: another filesystem than the default temp
 * dir's, for cross-filesystem cases); removes it afterwards. Where /dev/shm is not writable the
 * test logs that it skipped and `fn` does not run.
 */
export async function withShmDir(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: "/dev/shm", prefix }).catch(() => undefined);
  if (!dir) {
    console.log("skipped: /dev/shm is not writable");
    return;
  }
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
