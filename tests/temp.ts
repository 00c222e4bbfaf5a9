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
