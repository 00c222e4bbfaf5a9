import { assertEquals } from "../../tests/assert.ts";
import { Unwind } from "./unwind.ts";

Deno.test("unwind runs undos in reverse, keeps going past failures, reports them", async () => {
  const order: string[] = [];
  const u = new Unwind();
  u.push("network", () => order.push("network"));
  u.push("VMM process", () => {
    throw new Error("kill failed");
  });
  u.push("agent", async () => {
    await Promise.resolve();
    order.push("agent");
  });
  assertEquals(u.size, 3);
  const failures = await u.unwind();
  assertEquals(order, ["agent", "network"]);
  assertEquals(failures, ["undoing VMM process: kill failed"]);
  assertEquals(await u.unwind(), []);
});

Deno.test("commit forgets the undos", async () => {
  let ran = false;
  const u = new Unwind();
  u.push("x", () => ran = true);
  u.commit();
  assertEquals(await u.unwind(), []);
  assertEquals(ran, false);
});
