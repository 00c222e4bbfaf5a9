/**
 * Ships a checkpoint directory to a store and back.
 *
 * push: every regular file of the directory is uploaded; `memory-ranges` (the guest memory image,
 * mostly holes) is packed on the fly into the sparse-extent format as `memory-ranges.ates`, the
 * other files go as they are. The manifest (names, sizes, sha256 of the logical content) is
 * deleted first and written last, so a snapshot without one is partial.
 *
 * pull: reads the manifest, streams each object into a temporary directory beside the target
 * (the memory image straight into the sparse decoder), checks sizes and digests, and renames the
 * temporary directory onto the target only when everything matched.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, join, resolve } from "node:path";
import { packSparseFile } from "../snapshot/encode.ts";
import { unpackToFile } from "../snapshot/decode.ts";
import {
  decodeManifest,
  encodeManifest,
  type Manifest,
  MANIFEST_NAME,
  type ManifestFile,
} from "./manifest.ts";
import { NotFoundError, openStore, type Store, type StoreOptions } from "./store.ts";

/** The checkpoint file that is packed with the sparse codec. */
export const MEMORY_FILE = "memory-ranges";
/** Its object name in the store. */
export const MEMORY_OBJECT = "memory-ranges.ates";

export interface TransferProgress {
  /** The file being transferred. */
  file: string;
  /** Bytes of it done so far (populated bytes for the memory image). */
  bytes: number;
}

export interface TransferOptions extends StoreOptions {
  /** An already opened store (tests, callers that reuse one); otherwise opened from the URI. */
  store?: Store;
  onProgress?: (progress: TransferProgress) => void;
  /** Compression workers for the memory image (default: every core). */
  workers?: number;
}

function storeFor(uri: string, options: TransferOptions): Store {
  return options.store ?? openStore(uri.endsWith("/") ? uri : `${uri}/`, options);
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A pass-through that hashes and counts what flows through it. */
function hashing(onBytes: (n: number) => void) {
  const hash = createHash("sha256");
  let size = 0;
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      hash.update(chunk);
      size += chunk.length;
      onBytes(size);
      controller.enqueue(chunk);
    },
  });
  return { stream, result: () => ({ size, sha256: hash.digest("hex") }) };
}

/** Uploads the checkpoint directory `dir` to `uri`; returns the manifest written. */
export async function pushSnapshot(
  dir: string,
  uri: string,
  options: TransferOptions = {},
): Promise<Manifest> {
  const store = storeFor(uri, options);
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) {
      throw new Error(
        `cannot push ${dir}: ${entry.name} is not a regular file (a checkpoint holds only files)`,
      );
    }
    names.push(entry.name);
  }
  names.sort();
  if (names.includes(MANIFEST_NAME) || names.includes(MEMORY_OBJECT)) {
    throw new Error(
      `cannot push ${dir}: it holds a file named ${MANIFEST_NAME} or ${MEMORY_OBJECT}`,
    );
  }
  await store.delete(MANIFEST_NAME);
  const files: ManifestFile[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const report = (bytes: number) => options.onProgress?.({ file: name, bytes });
    if (name === MEMORY_FILE) {
      const hash = createHash("sha256");
      const pipe = new TransformStream<Uint8Array, Uint8Array>();
      const [stats] = await Promise.all([
        packSparseFile(path, pipe.writable, {
          digest: hash,
          workers: options.workers,
          onProgress: (s) => report(s.dataBytes),
        }),
        store.put(MEMORY_OBJECT, pipe.readable),
      ]);
      files.push({
        name,
        object: MEMORY_OBJECT,
        encoding: "sparse-zstd-v2",
        size: stats.logicalSize,
        sha256: hash.digest("hex"),
      });
    } else {
      const { stream, result } = hashing(report);
      await store.put(name, (await Deno.open(path)).readable.pipeThrough(stream));
      files.push({ name, object: name, encoding: "identity", ...result() });
    }
  }
  await store.put(MANIFEST_NAME, encodeManifest(files));
  return decodeManifest(encodeManifest(files), store.uri + MANIFEST_NAME);
}

/** Reads and validates the manifest at `uri`. */
export async function readManifest(uri: string, options: TransferOptions = {}): Promise<Manifest> {
  const store = storeFor(uri, options);
  let bytes: Uint8Array;
  try {
    bytes = await readAll(await store.get(MANIFEST_NAME));
  } catch (e) {
    if (e instanceof NotFoundError) {
      throw new Error(
        `no snapshot manifest at ${store.uri}${MANIFEST_NAME}: the snapshot is incomplete ` +
          `(its push did not finish) or the URI is wrong`,
      );
    }
    throw e;
  }
  return decodeManifest(bytes, store.uri + MANIFEST_NAME);
}

/**
 * Downloads the snapshot at `uri` into `dir` (which must not exist, or be empty) and verifies
 * every file against the manifest before `dir` appears; returns the manifest.
 */
export async function pullSnapshot(
  uri: string,
  dir: string,
  options: TransferOptions = {},
): Promise<Manifest> {
  const store = storeFor(uri, options);
  const target = resolve(dir);
  try {
    for await (const _ of Deno.readDir(target)) {
      throw new Error(`cannot pull into ${dir}: it exists and is not empty`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const manifest = await readManifest(uri, { ...options, store });
  const temp = join(
    dirname(target),
    `.${basename(target)}.partial-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`,
  );
  await Deno.mkdir(temp, { mode: 0o700 });
  try {
    for (const file of manifest.files) {
      const report = (bytes: number) => options.onProgress?.({ file: file.name, bytes });
      const input = await store.get(file.object);
      const path = join(temp, file.name);
      let got: { size: number; sha256: string };
      if (file.encoding === "sparse-zstd-v2") {
        const hash = createHash("sha256");
        const stats = await unpackToFile(input, path, {
          digest: hash,
          onProgress: (s) => report(s.writtenBytes),
        });
        got = { size: stats.logicalSize, sha256: hash.digest("hex") };
      } else {
        const { stream, result } = hashing(report);
        const out = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
        await input.pipeThrough(stream).pipeTo(out.writable);
        got = result();
      }
      if (got.size !== file.size || got.sha256 !== file.sha256) {
        throw new Error(
          `${file.name} from ${store.uri}${file.object} does not match the manifest ` +
            `(size ${got.size}, sha256 ${got.sha256.slice(0, 12)}…; expected size ${file.size}, ` +
            `sha256 ${file.sha256.slice(0, 12)}…): the snapshot was modified or corrupted`,
        );
      }
    }
    await Deno.rename(temp, target);
  } catch (e) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw e;
  }
  return manifest;
}
