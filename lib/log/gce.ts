/**
 * Whether the worker runs on Google Compute Engine (GKE nodes included), which decides the
 * actor-log labels key. Like Go's `metadata.OnGCE` without the network probe: true when
 * `GCE_METADATA_HOST` is set or the machine's DMI product name is Google's.
 *
 * @module
 */

/** True when the environment or the DMI product name says this is a GCE machine. */
export function onGce(
  env: string | undefined = Deno.env.get("GCE_METADATA_HOST"),
  productNamePath = "/sys/class/dmi/id/product_name",
): boolean {
  if (env) return true;
  try {
    return /^Google( Compute Engine)?$/.test(Deno.readTextFileSync(productNamePath).trim());
  } catch {
    return false;
  }
}
