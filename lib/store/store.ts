/**
 * Object stores for shipping snapshots in standalone use: a flat namespace of named objects under
 * one URI. `file://DIR/` keeps objects as files below DIR; `s3://bucket/prefix/` talks to any
 * S3-compatible endpoint (see docs/stores.md, also for `gs://` through GCS's S3 interoperability).
 *
 * Contract: `put` of a stream never holds the whole object in memory; a failed `put` leaves no
 * object (file: temp + rename; S3: the multipart upload is aborted); `get` of a missing object
 * throws {@link NotFoundError}. Names are relative slash-separated paths of safe characters.
 *
 * @module
 */
import { FileStore } from "./file.ts";
import { type S3Options, S3Store } from "./s3.ts";

/** A store of named objects. */
export interface Store {
  /** The URI the store was opened with (normalised to end in `/`). */
  readonly uri: string;
  /** Creates or replaces `name` with `body`. */
  put(name: string, body: ReadableStream<Uint8Array> | Uint8Array): Promise<void>;
  /** The content of `name`; throws NotFoundError when it does not exist. */
  get(name: string): Promise<ReadableStream<Uint8Array>>;
  /** Whether `name` exists. */
  exists(name: string): Promise<boolean>;
  /** The names below the store's root that start with `prefix`, sorted. */
  list(prefix?: string): Promise<string[]>;
  /** Removes `name`; removing a missing object is not an error. */
  delete(name: string): Promise<void>;
}

/** An object that does not exist. */
export class NotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotFoundError";
  }
}

export type StoreOptions = S3Options;

const NAME = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/** Throws unless `name` is a safe relative object name (no `..`, no leading `/`). */
export function checkName(name: string): string {
  if (!NAME.test(name) || name.split("/").some((part) => part === "." || part === "..")) {
    throw new Error(
      `invalid object name ${
        JSON.stringify(name)
      }: use letters, digits, '.', '_', '-' and '/' separators`,
    );
  }
  return name;
}

/** Opens the store at `uri`: `file:///abs/dir/` or `s3://bucket/prefix/`. */
export function openStore(uri: string, options: StoreOptions = {}): Store {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new Error(
      `invalid store URI ${JSON.stringify(uri)}: use file:///DIR/ or s3://BUCKET/PREFIX/`,
    );
  }
  switch (url.protocol) {
    case "file:":
      return new FileStore(url);
    case "s3:":
      return new S3Store(url, options);
    default:
      throw new Error(
        `unsupported store URI scheme ${JSON.stringify(url.protocol)} in ${uri}: use file:// or ` +
          `s3:// (for gs://, use s3:// with the GCS endpoint, see docs/stores.md)`,
      );
  }
}
