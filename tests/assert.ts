/**
 * Assertions for the tests (JSR's @std/assert is not reachable here): thin names over
 * node:assert/strict, so failures print Node's diffs.
 *
 * @module
 */
import assert from "node:assert/strict";

export function assertEquals<T>(
  actual: unknown,
  expected: T,
  message?: string,
): asserts actual is T {
  assert.deepStrictEqual(actual, expected, message);
}

export function assertNotEquals(actual: unknown, expected: unknown, message?: string): void {
  assert.notDeepStrictEqual(actual, expected, message);
}

export function assert_(condition: unknown, message?: string): asserts condition {
  assert.ok(condition, message);
}
export { assert_ as assert };

export function assertMatch(actual: string, expected: RegExp, message?: string): void {
  assert.match(actual, expected, message);
}

export function assertStringIncludes(actual: string, expected: string, message?: string): void {
  if (!actual.includes(expected)) {
    throw new assert.AssertionError({
      message: message ??
        `expected ${JSON.stringify(actual)} to include ${JSON.stringify(expected)}`,
      actual,
      expected,
    });
  }
}

/** Asserts `fn` throws (synchronously) an error whose message matches `pattern`; returns it. */
export function assertThrows(fn: () => unknown, pattern?: RegExp | string): Error {
  try {
    fn();
  } catch (e) {
    checkError(e, pattern);
    return e as Error;
  }
  throw new assert.AssertionError({ message: "expected function to throw" });
}

/** Asserts `fn` rejects with an error whose message matches `pattern`; returns it. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  pattern?: RegExp | string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    checkError(e, pattern);
    return e as Error;
  }
  throw new assert.AssertionError({ message: "expected promise to reject" });
}

function checkError(e: unknown, pattern?: RegExp | string): void {
  if (!(e instanceof Error)) {
    throw new assert.AssertionError({ message: `thrown value is not an Error: ${String(e)}` });
  }
  if (pattern === undefined) return;
  const ok = typeof pattern === "string" ? e.message.includes(pattern) : pattern.test(e.message);
  if (!ok) {
    throw new assert.AssertionError({
      message: `error message ${JSON.stringify(e.message)} does not match ${pattern}`,
    });
  }
}
