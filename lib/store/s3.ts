/**
 * `s3://bucket/prefix/` on any S3-compatible endpoint, signed with SigV4 (aws4fetch).
 *
 * Configuration, options first, then the environment: endpoint (`AWS_ENDPOINT_URL_S3`,
 * `AWS_ENDPOINT_URL`, default `https://s3.<region>.amazonaws.com`), region (`AWS_REGION`,
 * `AWS_DEFAULT_REGION`, default `us-east-1`), credentials (`AWS_ACCESS_KEY_ID`,
 * `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), path-style addressing (`?path-style=true` on the
 * URI, or `AWS_S3_FORCE_PATH_STYLE=true`; also the default for IP and localhost endpoints).
 *
 * Streams are uploaded with a multipart upload in parts of `partSize` bytes (default 16 MiB; at
 * most two parts in memory: one uploading, one filling); a body that fits one part is a single PUT.
 * On failure the multipart upload is aborted.
 *
 * @module
 */
import { AwsClient } from "aws4fetch";
import { checkName, NotFoundError, type Store } from "./store.ts";

export interface S3Options {
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key`. */
  forcePathStyle?: boolean;
  /** Multipart part size in bytes (S3 requires ≥ 5 MiB except for the last part). */
  partSize?: number;
  /** Environment to read settings from (default Deno.env). */
  env?: Record<string, string | undefined>;
  /** The HTTP client (default the global fetch); tests observe requests through it. */
  fetch?: (request: Request) => Promise<Response>;
}

/** Default multipart part size. */
export const DEFAULT_PART_SIZE = 16 << 20;

function truthy(value: string | null | undefined): boolean {
  return value !== undefined && value !== null && /^(1|true|yes)$/i.test(value);
}

/** RFC 3986 encoding of each path segment of an object key. */
function encodeKey(key: string): string {
  return key.split("/").map((part) =>
    encodeURIComponent(part).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    )
  ).join("/");
}

function xmlValues(xml: string, tag: string): string[] {
  const out: string[] = [];
  for (const m of xml.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))) {
    out.push(
      m[1].replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(
        /&apos;/g,
        "'",
      )
        .replace(/&amp;/g, "&"),
    );
  }
  return out;
}

export class S3Store implements Store {
  readonly uri: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly partSize: number;
  #client: AwsClient;
  #endpoint: URL;
  #pathStyle: boolean;
  #fetch: (request: Request) => Promise<Response>;

  constructor(url: URL, options: S3Options = {}) {
    const env = options.env ?? Deno.env.toObject();
    this.bucket = url.hostname;
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(this.bucket)) {
      throw new Error(`invalid bucket name ${JSON.stringify(this.bucket)} in ${url.href}`);
    }
    this.prefix = decodeURIComponent(url.pathname).replace(/^\/+/, "");
    if (this.prefix && !this.prefix.endsWith("/")) this.prefix += "/";
    if (this.prefix) checkName(this.prefix.slice(0, -1));
    this.uri = `s3://${this.bucket}/${this.prefix}`;
    const region = options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1";
    const endpoint = options.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL ??
      `https://s3.${region}.amazonaws.com`;
    this.#endpoint = new URL(endpoint);
    const query = url.searchParams.get("path-style") ?? url.searchParams.get("force-path-style");
    const local = /^(\d+\.\d+\.\d+\.\d+|localhost|\[[0-9a-f:]+\])$/i.test(this.#endpoint.hostname);
    this.#pathStyle = options.forcePathStyle ??
      (query !== null
        ? truthy(query)
        : env.AWS_S3_FORCE_PATH_STYLE !== undefined
        ? truthy(env.AWS_S3_FORCE_PATH_STYLE)
        : local);
    const accessKeyId = options.accessKeyId ?? env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = options.secretAccessKey ?? env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      throw new Error(
        `no credentials for ${this.uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
      );
    }
    this.#client = new AwsClient({
      accessKeyId,
      secretAccessKey,
      sessionToken: options.sessionToken ?? env.AWS_SESSION_TOKEN,
      service: "s3",
      region,
    });
    this.#fetch = options.fetch ?? ((request) => fetch(request));
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
  }

  #url(key: string, query = ""): string {
    const base = this.#endpoint.href.replace(/\/+$/, "");
    const encoded = encodeKey(key);
    const url = this.#pathStyle
      ? `${base}/${this.bucket}/${encoded}`
      : `${this.#endpoint.protocol}//${this.bucket}.${this.#endpoint.host}${
        this.#endpoint.pathname.replace(/\/+$/, "")
      }/${encoded}`;
    return query ? `${url}?${query}` : url;
  }

  async #request(
    what: string,
    url: string,
    init: RequestInit,
    accept: number[] = [200],
  ): Promise<Response> {
    let response: Response;
    try {
      response = await this.#fetch(await this.#client.sign(url, init));
    } catch (e) {
      throw new Error(`s3 ${what} failed: ${(e as Error).message}; check the endpoint`);
    }
    if (accept.includes(response.status)) return response;
    const text = await response.text().catch(() => "");
    const code = xmlValues(text, "Code")[0] ?? "";
    const message = (xmlValues(text, "Message")[0] ?? "").replace(/\.$/, "");
    const detail = [code, message].filter(Boolean).join(": ");
    if (response.status === 404 && init.method !== "DELETE") {
      throw new NotFoundError(`s3 ${what}: not found (404${detail ? ` ${detail}` : ""})`);
    }
    const hint = response.status === 403
      ? "; check the credentials and the bucket's permissions"
      : "";
    throw new Error(
      `s3 ${what} failed: HTTP ${response.status}${detail ? ` ${detail}` : ""}${hint}`,
    );
  }

  #key(name: string): string {
    return this.prefix + checkName(name);
  }

  async put(name: string, body: ReadableStream<Uint8Array> | Uint8Array): Promise<void> {
    const key = this.#key(name);
    if (body instanceof Uint8Array) return await this.#putOne(key, body);
    const reader = body.getReader();
    const parts = new PartReader(reader);
    let first: Uint8Array;
    try {
      first = await parts.read(this.partSize);
    } catch (e) {
      reader.releaseLock();
      throw e;
    }
    if (first.length < this.partSize) {
      reader.releaseLock();
      return await this.#putOne(key, first);
    }
    await this.#putMultipart(key, first, reader, parts);
  }

  async #putOne(key: string, bytes: Uint8Array): Promise<void> {
    await this.#request(`PUT s3://${this.bucket}/${key}`, this.#url(key), {
      method: "PUT",
      body: bytes as Uint8Array<ArrayBuffer>,
    });
  }

  async #putMultipart(
    key: string,
    first: Uint8Array,
    reader: ReadableStreamDefaultReader<Uint8Array>,
    parts: PartReader,
  ): Promise<void> {
    const what = `multipart upload of s3://${this.bucket}/${key}`;
    const created = await this.#request(what, this.#url(key, "uploads="), { method: "POST" });
    const uploadId = xmlValues(await created.text(), "UploadId")[0];
    if (!uploadId) throw new Error(`s3 ${what} failed: no UploadId in the response`);
    const id = `uploadId=${encodeURIComponent(uploadId)}`;
    const etags: string[] = [];
    try {
      let part: Uint8Array = first;
      while (part.length > 0) {
        const number = etags.length + 1;
        // Read the next part while this one uploads: two parts in memory at most.
        // Both settle before going on, so an abort never races a part still uploading.
        const [uploaded, read] = await Promise.allSettled([
          this.#request(`${what} (part ${number})`, this.#url(key, `partNumber=${number}&${id}`), {
            method: "PUT",
            body: part as Uint8Array<ArrayBuffer>,
          }),
          parts.read(this.partSize),
        ]);
        if (uploaded.status === "rejected") throw uploaded.reason;
        if (read.status === "rejected") throw read.reason;
        const response = uploaded.value;
        const next = read.value;
        const etag = response.headers.get("etag");
        if (!etag) throw new Error(`s3 ${what} failed: part ${number} has no ETag`);
        etags.push(etag);
        part = next;
      }
      const xml = `<CompleteMultipartUpload>${
        etags.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${etag}</ETag></Part>`)
          .join("")
      }</CompleteMultipartUpload>`;
      const done = await this.#request(`${what} (complete)`, this.#url(key, id), {
        method: "POST",
        body: xml,
        headers: { "content-type": "application/xml" },
      });
      // S3 may report a failed completion with 200 and an Error document.
      const text = await done.text();
      if (text.includes("<Error>")) {
        throw new Error(
          `s3 ${what} failed: ${xmlValues(text, "Code")[0] ?? "error"} on completion`,
        );
      }
    } catch (e) {
      await reader.cancel(e).catch(() => {});
      await this.#request(`abort ${what}`, this.#url(key, id), { method: "DELETE" }, [200, 204])
        .catch(() => {});
      throw e;
    } finally {
      reader.releaseLock();
    }
  }

  async get(name: string): Promise<ReadableStream<Uint8Array>> {
    const key = this.#key(name);
    const response = await this.#request(`GET s3://${this.bucket}/${key}`, this.#url(key), {
      method: "GET",
    });
    if (!response.body) throw new Error(`s3 GET s3://${this.bucket}/${key} returned no body`);
    return response.body;
  }

  async exists(name: string): Promise<boolean> {
    const key = this.#key(name);
    const response = await this.#request(`HEAD s3://${this.bucket}/${key}`, this.#url(key), {
      method: "HEAD",
    }, [200, 404]);
    await response.body?.cancel();
    return response.status === 200;
  }

  async list(prefix = ""): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    do {
      const query = new URLSearchParams({ "list-type": "2", prefix: this.prefix + prefix });
      if (token) query.set("continuation-token", token);
      const response = await this.#request(
        `LIST s3://${this.bucket}/${this.prefix}${prefix}`,
        this.#url("", query.toString().replace(/\+/g, "%20")),
        { method: "GET" },
      );
      const xml = await response.text();
      for (const key of xmlValues(xml, "Key")) names.push(key.slice(this.prefix.length));
      token = xmlValues(xml, "IsTruncated")[0] === "true"
        ? xmlValues(xml, "NextContinuationToken")[0]
        : undefined;
    } while (token);
    return names.sort();
  }

  async delete(name: string): Promise<void> {
    const key = this.#key(name);
    await this.#request(`DELETE s3://${this.bucket}/${key}`, this.#url(key), {
      method: "DELETE",
    }, [200, 204, 404]);
  }
}

/** Cuts a byte stream into parts of a fixed size (the last may be shorter or empty). */
class PartReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #left: Uint8Array | undefined;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  async read(size: number): Promise<Uint8Array> {
    const part = new Uint8Array(size);
    let fill = 0;
    while (fill < size) {
      let chunk = this.#left;
      this.#left = undefined;
      if (!chunk) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        chunk = value;
      }
      const n = Math.min(chunk.length, size - fill);
      part.set(chunk.subarray(0, n), fill);
      fill += n;
      if (n < chunk.length) this.#left = chunk.subarray(n);
    }
    return part.subarray(0, fill);
  }
}
