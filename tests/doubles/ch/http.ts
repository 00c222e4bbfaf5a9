/**
 * The CH double's HTTP layer, shaped like micro_http: requests parsed strictly (Content-Length
 * bodies only; chunked bodies refused), responses written with a status line without reason
 * phrase, no Content-Length on 204, and JSON array-of-strings error bodies.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface ParsedRequest {
  method: string;
  path: string;
  headers: Map<string, string>;
  /** undefined when the request had no body (no Content-Length, or 0). */
  body: string | undefined;
  consumed: number;
}

/** A request the double refuses at the HTTP layer (answered 400 with this message). */
export class BadHttpRequest extends Error {}

function headerEnd(buf: Uint8Array): number {
  for (let i = 0; i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

/** Parses one request from the start of `buf`; undefined when more bytes are needed. */
export function parseRequest(buf: Uint8Array): ParsedRequest | undefined {
  const end = headerEnd(buf);
  if (end < 0) {
    if (buf.length > 64 * 1024) throw new BadHttpRequest("request headers too large");
    return undefined;
  }
  const lines = decoder.decode(buf.subarray(0, end)).split("\r\n");
  const m = /^(GET|PUT|PATCH|POST|DELETE) (\S+) HTTP\/1\.[01]$/.exec(lines[0]);
  if (!m) throw new BadHttpRequest(`invalid request line ${JSON.stringify(lines[0])}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new BadHttpRequest(`invalid header ${JSON.stringify(line)}`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  if (headers.has("transfer-encoding")) {
    throw new BadHttpRequest(
      `Transfer-Encoding ${headers.get("transfer-encoding")} is not supported: send Content-Length`,
    );
  }
  const cl = headers.get("content-length");
  let length = 0;
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl)) throw new BadHttpRequest(`invalid Content-Length ${JSON.stringify(cl)}`);
    length = Number(cl);
    if (length > 4 << 20) throw new BadHttpRequest("request body larger than 4 MiB");
  }
  const start = end + 4;
  if (buf.length < start + length) return undefined;
  return {
    method: m[1],
    path: m[2],
    headers,
    body: length > 0 ? decoder.decode(buf.subarray(start, start + length)) : undefined,
    consumed: start + length,
  };
}

/** A response as micro_http writes it. */
export function encodeResponse(status: number, body?: string): Uint8Array<ArrayBuffer> {
  let head = `HTTP/1.1 ${status} \r\nServer: Cloud Hypervisor API\r\nConnection: keep-alive\r\n` +
    "Content-Type: application/json\r\n";
  const bytes = body === undefined ? undefined : encoder.encode(body);
  if (status !== 204) head += `Content-Length: ${bytes?.length ?? 0}\r\n`;
  head += "\r\n";
  const h = encoder.encode(head);
  const out = new Uint8Array(h.length + (status === 204 ? 0 : bytes?.length ?? 0));
  out.set(h);
  if (bytes && status !== 204) out.set(bytes, h.length);
  return out;
}

/** An error answer: CH's body is the error chain as a JSON array of strings. */
export function errorResponse(status: number, messages: string[]): Uint8Array<ArrayBuffer> {
  return encodeResponse(status, JSON.stringify(messages));
}
