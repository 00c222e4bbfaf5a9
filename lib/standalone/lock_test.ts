/** The per-actor command lock: one holder, stale locks taken over, released on error. */
import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { lockPath, withActorLock } from "./lock.ts";

Deno.test("lock: one holder at a time, stale locks taken over, released on error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sa-lock-" });
  try {
    const inner = await withActorLock(dir, "web", () =>
      assertRejects(
        () => withActorLock(dir, "web", () => Promise.resolve()),
        `another ateom-microvm command (pid ${Deno.pid}) is working on web: wait for it to finish`,
      ));
    assertEquals(inner.name, "LockedError");
    // Another name is independent.
    assertEquals(
      await withActorLock(dir, "web", () => withActorLock(dir, "db", () => Promise.resolve(7))),
      7,
    );
    // A lock left by a process that is gone is taken over.
    await Deno.writeTextFile(
      lockPath(dir, "web"),
      JSON.stringify({ pid: 999999999, startTicks: 1 }),
    );
    assertEquals(await withActorLock(dir, "web", () => Promise.resolve("ok")), "ok");
    // Released when fn throws.
    await assertRejects(
      () => withActorLock(dir, "web", () => Promise.reject(new Error("boom"))),
      "boom",
    );
    assertEquals(await Deno.stat(lockPath(dir, "web")).then(() => "held", () => "free"), "free");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
