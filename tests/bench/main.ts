/**
 * `make bench`: runs every tests/bench/*_bench.ts in turn (a module's `bench()` export, or its
 * top-level code on import). Benchmarks print ratios against reference tools measured side by side.
 *
 * @module
 */
const dir = new URL(".", import.meta.url);
const names = (await Array.fromAsync(Deno.readDir(dir)))
  .map((e) => e.name)
  .filter((n) => n.endsWith("_bench.ts"))
  .sort();
for (const name of names) {
  console.log(`== ${name}`);
  const module = await import(new URL(name, dir).href);
  if (typeof module.bench === "function") await module.bench();
}
