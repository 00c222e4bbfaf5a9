/**
 * Golden-file snapshots for text output: compares against `tests/standalone/golden/<name>`, or
 * rewrites the file when `UPDATE_GOLDEN=1` is set (then review the diff and commit it).
 *
 * @module
 */
import { assertEquals } from "../assert.ts";

export const UPDATE_ENV = "UPDATE_GOLDEN";

/** Asserts `actual` equals the golden file `name` (or writes it under UPDATE_GOLDEN=1). */
export async function assertGolden(name: string, actual: string): Promise<void> {
  const path = new URL(`./golden/${name}`, import.meta.url).pathname;
  if (Deno.env.get(UPDATE_ENV) === "1") {
    await Deno.writeTextFile(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = await Deno.readTextFile(path);
  } catch {
    throw new Error(`golden file ${path} is missing: run the test with ${UPDATE_ENV}=1`);
  }
  assertEquals(actual, expected, `output differs from ${path} (${UPDATE_ENV}=1 rewrites it)`);
}
