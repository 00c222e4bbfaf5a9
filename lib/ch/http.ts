/**
 * HTTP/1.1 as cloud-hypervisor's API server (micro_http) speaks it: request formatting and
 * response parsing, as pure functions over bytes (no sockets here).
 *
 * Server quirks honoured: status lines carry no reason phrase (`HTTP/1.1 204 `), 204 answers have
 * no Content-Length, error bodies are JSON arrays of strings. Requests are never chunked: a body
 * goes out with its Content-Length, and a request without a body has neither Content-Length nor
 * Content-Type (micro_http treats `Content-Length: 0` as a body on some routes).
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The HTTP methods the CH API uses. */
export type Method = "GET" | "PUT";

/**
 * The bytes of one request to the CH API.
 *
 * @example
 * ```ts
 * encodeRequest("GET", "/api/v1/vmm.ping");
 * // "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n"
 * ```
 */
export function encodeRequest(
  method: Method,
  path: string,
  body?: string,
): Uint8Array<ArrayBuffer> {
  if (!/^\/[\x21-\x7e]*$/.test(path)) {
    throw new Error(`invalid request path ${JSON.stringify(path)}`);
  }
  const bodyBytes = body === undefined ? undefined : encoder.encode(body);
  let head = `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n`;
  if (bodyBytes) {
    head += `Content-Type: application/json\r\nContent-Length: ${bodyBytes.length}\r\n`;
  }
  head += "\r\n";
  const headBytes = encoder.encode(head);
  const out = new Uint8Array(headBytes.length + (bodyBytes?.length ?? 0));
  out.set(headBytes);
  if (bodyBytes) out.set(bodyBytes, headBytes.length);
  return out;
}

/** A parsed response. Header names are lower-cased; repeated headers are joined with ", ". */
export interface HttpResponse {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array<ArrayBuffer>;
  /** Bytes of the input the response took (anything after belongs to a next response). */
  consumed: number;
}

/** A response that cannot be parsed: the peer is not speaking HTTP/1.1 as expected. */
export class HttpParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HttpParseError";
  }
}

function indexOfCrlf(buf: Uint8Array, from: number): number {
  for (let i = from; i + 1 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10) return i;
  }
  return -1;
}

function indexOfHeaderEnd(buf: Uint8Array): number {
  for (let i = 0; i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

/** Parses `HTTP/1.1 <code>[ <reason>]`; the reason phrase may be empty or absent. */
export function parseStatusLine(line: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(line);
  if (!m) throw new HttpParseError(`malformed status line ${JSON.stringify(line)}`);
  return Number(m[1]);
}

function hasNoBody(status: number): boolean {
  return status === 204 || status === 304 || (status >= 100 && status < 200);
}

/**
 * Decodes a chunked body starting at `start`. Returns the body and the offset after the final
 * CRLF, or undefined when more bytes are needed.
 */
export function decodeChunked(
  buf: Uint8Array,
  start: number,
): { body: Uint8Array<ArrayBuffer>; end: number } | undefined {
  const parts: Uint8Array[] = [];
  let off = start;
  for (;;) {
    const lineEnd = indexOfCrlf(buf, off);
    if (lineEnd < 0) return undefined;
    const sizeText = decoder.decode(buf.subarray(off, lineEnd)).split(";")[0].trim();
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) {
      throw new HttpParseError(`malformed chunk size ${JSON.stringify(sizeText)}`);
    }
    const size = parseInt(sizeText, 16);
    off = lineEnd + 2;
    if (size === 0) {
      // Trailer fields (ignored) end with an empty line.
      for (;;) {
        const trailerEnd = indexOfCrlf(buf, off);
        if (trailerEnd < 0) return undefined;
        const empty = trailerEnd === off;
        off = trailerEnd + 2;
        if (empty) break;
      }
      const total = parts.reduce((n, p) => n + p.length, 0);
      const body = new Uint8Array(total);
      let at = 0;
      for (const p of parts) {
        body.set(p, at);
        at += p.length;
      }
      return { body, end: off };
    }
    if (buf.length < off + size + 2) return undefined;
    if (buf[off + size] !== 13 || buf[off + size + 1] !== 10) {
      throw new HttpParseError("chunk not terminated by CRLF");
    }
    parts.push(buf.subarray(off, off + size));
    off += size + 2;
  }
}

/**
 * Parses one response from the start of `buf`. Returns undefined when more bytes are needed;
 * `eof` says no more will come (a body without length then runs to the end).
 */
export function parseResponse(buf: Uint8Array, eof = false): HttpResponse | undefined {
  const headerEnd = indexOfHeaderEnd(buf);
  if (headerEnd < 0) {
    if (eof && buf.length > 0) {
      throw new HttpParseError("connection closed inside response headers");
    }
    return undefined;
  }
  const lines = decoder.decode(buf.subarray(0, headerEnd)).split("\r\n");
  const status = parseStatusLine(lines[0]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpParseError(`malformed header line ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = headers.get(name);
    headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  const bodyStart = headerEnd + 4;
  if (hasNoBody(status)) {
    return { status, headers, body: new Uint8Array(0), consumed: bodyStart };
  }
  const te = headers.get("transfer-encoding");
  if (te !== undefined) {
    if (te.toLowerCase() !== "chunked") {
      throw new HttpParseError(`unsupported transfer-encoding ${JSON.stringify(te)}`);
    }
    const chunked = decodeChunked(buf, bodyStart);
    if (!chunked) {
      if (eof) throw new HttpParseError("connection closed inside a chunked body");
      return undefined;
    }
    return { status, headers, body: chunked.body, consumed: chunked.end };
  }
  const cl = headers.get("content-length");
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl)) {
      throw new HttpParseError(`malformed content-length ${JSON.stringify(cl)}`);
    }
    const length = Number(cl);
    if (buf.length < bodyStart + length) {
      if (eof) {
        throw new HttpParseError(
          `connection closed after ${buf.length - bodyStart} of ${length} body bytes`,
        );
      }
      return undefined;
    }
    return {
      status,
      headers,
      body: buf.slice(bodyStart, bodyStart + length),
      consumed: bodyStart + length,
    };
  }
  if (!eof) return undefined;
  return { status, headers, body: buf.slice(bodyStart), consumed: buf.length };
}

/**
 * CH's error chain from an error body: the JSON array of strings (outermost first), or the raw
 * text as the only message when the body is not such an array (empty body: no messages).
 */
export function errorMessages(body: Uint8Array): string[] {
  const text = decoder.decode(body).trim();
  try {
    const parsed = JSON.parse(text);
    if (Array.isArray(parsed) && parsed.every((s) => typeof s === "string")) return parsed;
  } catch {
    // not JSON: fall through to the raw text
  }
  return text ? [text] : [];
}

/** CH's error text from an error body: {@link errorMessages} joined with ": ". */
export function errorText(body: Uint8Array): string {
  return errorMessages(body).join(": ");
}
