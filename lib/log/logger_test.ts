/** The JSON logger's slog shape, levels and time format; the GCE labels key decision. */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { formatTime, jsonLogger, parseLevel } from "./logger.ts";

Deno.test("logger: slog JSON shape, level filter, attrs after msg, errors as messages", () => {
  const out: string[] = [];
  const log = jsonLogger(
    (t) => out.push(t),
    "INFO",
    {},
    () => new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 60)),
  )
    .with({ component: "api" });
  log.debug("hidden");
  log.warn("disk low", { free: 3, err: new Error("ENOSPC") });
  assertEquals(out, [
    `{"time":"2026-01-02T03:04:05.06Z","level":"WARN","msg":"disk low","component":"api","free":3,"err":"ENOSPC"}\n`,
  ]);
});

Deno.test("logger: --log-level values and Go RFC3339Nano time", () => {
  assertEquals(parseLevel("debug"), "DEBUG");
  assertEquals(parseLevel("Warning"), "WARN");
  assertThrows(
    () => parseLevel("loud"),
    'invalid log level "loud": use one of debug, info, warn, error',
  );
  assertEquals(formatTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5))), "2026-01-02T03:04:05Z");
  assertEquals(formatTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 50, 100))), "2026-01-02T03:04:50.1Z");
});

Deno.test("gce: env or DMI product name decide the labels key", async () => {
  const { onGce } = await import("./gce.ts");
  const dir = await Deno.makeTempDir();
  try {
    const product = `${dir}/product_name`;
    await Deno.writeTextFile(product, "Google Compute Engine\n");
    assertEquals(onGce(undefined, product), true);
    await Deno.writeTextFile(product, "Standard PC (Q35 + ICH9, 2009)\n");
    assertEquals(onGce(undefined, product), false);
    assertEquals(onGce("169.254.169.254", product), true);
    assertEquals(onGce(undefined, `${dir}/missing`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
