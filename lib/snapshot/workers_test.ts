import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { BufferPool, ContextPool } from "./workers.ts";

Deno.test("BufferPool reuses a spare buffer large enough and keeps at most `keep`", () => {
  const pool = new BufferPool(1);
  const a = pool.get(1000);
  assertEquals(a.length, 1000);
  assertEquals(a.buffer.byteLength, 1 << 20, "rounded up to a whole MiB");
  pool.put(a);
  const b = pool.get(5000);
  assert(b.buffer === a.buffer, "the spare is reused");
  const c = pool.get(3 << 20);
  assertEquals(c.buffer.byteLength, 3 << 20);
  pool.put(b);
  pool.put(c); // over `keep`: the smallest spare is freed now
  assertEquals(b.buffer.byteLength, 0);
  assert(pool.get(2 << 20).buffer === c.buffer);
});

Deno.test("ContextPool: one call per context, waiters in order, disposal on close", async () => {
  const disposed: string[] = [];
  const pool = new ContextPool(["a"], (ctx) => disposed.push(ctx));
  const order: string[] = [];
  let release!: () => void;
  const first = pool.use(async (ctx) => {
    order.push(`1:${ctx}`);
    await new Promise<void>((r) => release = r);
  });
  const second = pool.use((ctx) => Promise.resolve(order.push(`2:${ctx}`)));
  await Promise.resolve();
  assertEquals(order, ["1:a"], "the second call waits for the only context");
  release();
  await Promise.all([first, second]);
  assertEquals(order, ["1:a", "2:a"]);

  let finish!: () => void;
  const busy = pool.use(() => new Promise<void>((r) => finish = r));
  pool.close();
  assertEquals(disposed, [], "a busy context is disposed of only when its call returns");
  finish();
  await busy;
  assertEquals(disposed, ["a"]);
  await assertRejects(() => pool.use(() => Promise.resolve()));
});
