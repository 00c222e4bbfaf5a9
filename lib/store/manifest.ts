/**
 * The snapshot manifest: `manifest.json`, written last by push, so its presence marks a complete
 * snapshot. It lists every file of the checkpoint directory with its logical size and the sha256
 * of its logical content (holes read as zeros), and the object that holds it with its encoding.
 *
 * @module
 */

export const MANIFEST_NAME = "manifest.json";
export const MANIFEST_FORMAT = "ateom-microvm-snapshot";
export const MANIFEST_VERSION = 1;

/** How an object encodes its file. */
export type Encoding = "identity" | "sparse-zstd-v2";

export interface ManifestFile {
  /** File name in the checkpoint directory. */
  name: string;
  /** Object name in the store (relative to the snapshot URI). */
  object: string;
  encoding: Encoding;
  /** Logical size in bytes. */
  size: number;
  /** Hex sha256 of the logical content. */
  sha256: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  files: ManifestFile[];
}

const FILE_NAME = /^[A-Za-z0-9._-]+$/;

/** Serialises a manifest (stable key order, one file per line). */
export function encodeManifest(files: ManifestFile[]): Uint8Array {
  const sorted = [...files].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const manifest: Manifest = { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, files: sorted };
  return new TextEncoder().encode(JSON.stringify(manifest, null, 1) + "\n");
}

/** Parses and validates a manifest; throws a one-line error naming the problem. */
export function decodeManifest(bytes: Uint8Array, where: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new Error(`manifest ${where} is not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
  const fail = (why: string): never => {
    throw new Error(`manifest ${where} is invalid: ${why}`);
  };
  const m = value as Partial<Manifest>;
  if (typeof m !== "object" || m === null || m.format !== MANIFEST_FORMAT) {
    fail(`format is not ${JSON.stringify(MANIFEST_FORMAT)}`);
  }
  if (m.version !== MANIFEST_VERSION) {
    fail(`version ${m.version} is not supported (this build reads ${MANIFEST_VERSION})`);
  }
  if (!Array.isArray(m.files)) fail("files is not a list");
  const seen = new Set<string>();
  for (const f of m.files!) {
    if (
      typeof f?.name !== "string" || !FILE_NAME.test(f.name) || f.name === "." || f.name === ".."
    ) {
      fail(`bad file name ${JSON.stringify(f?.name)}`);
    }
    if (seen.has(f.name)) fail(`file ${f.name} is listed twice`);
    seen.add(f.name);
    if (typeof f.object !== "string" || !FILE_NAME.test(f.object) || f.object === MANIFEST_NAME) {
      fail(`bad object name for ${f.name}`);
    }
    if (f.encoding !== "identity" && f.encoding !== "sparse-zstd-v2") {
      fail(`unknown encoding ${JSON.stringify(f.encoding)} for ${f.name}`);
    }
    if (!Number.isSafeInteger(f.size) || f.size < 0) fail(`bad size for ${f.name}`);
    if (typeof f.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(f.sha256)) {
      fail(`bad sha256 for ${f.name}`);
    }
  }
  return m as Manifest;
}
