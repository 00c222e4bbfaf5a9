/**
 * `make bench`: runs every benchmark module in tests/bench/ one after another and prints their
 * results. A module is any `.ts` file here except this one and files starting with `_`; it either
 * exports `run(): Promise<void>` (called) or does its work at top level (run by the import).
 * Benchmarks print measured ratios side by side; none of them fails the build on a number.
 *
 * @module
 */

const here = new URL(".", import.meta.url);

const names = [...Deno.readDirSync(here)]
  .map((e) => e.name)
  .filter((n) => n.endsWith(".ts") && n !== "main.ts" && !n.startsWith("_"))
  .filter((n) => !n.endsWith("_test.ts"))
  .sort();

const only = Deno.args.length > 0 ? new Set(Deno.args) : undefined;
let failed = 0;
for (const name of names) {
  if (only && !only.has(name.replace(/\.ts$/, ""))) continue;
  console.log(`\n=== ${name} ===`);
  const started = performance.now();
  try {
    const mod = await import(new URL(name, here).href);
    if (typeof mod.run === "function") await mod.run();
  } catch (e) {
    failed++;
    console.log(`${name}: failed: ${(e as Error)?.stack ?? e}`);
  }
  console.log(`(${name}: ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
if (failed > 0) Deno.exit(1);
