/**
 * cloud-hypervisor's HTTP/1.1 dialect: request bytes, and response parsing of status lines,
 * Content-Length, chunked and to-EOF bodies.
 */
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  decodeChunked,
  encodeRequest,
  errorMessages,
  errorText,
  HttpParseError,
  parseResponse,
  parseStatusLine,
} from "./http.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("http: a request without a body has neither Content-Length nor Content-Type", () => {
  assertEquals(
    dec.decode(encodeRequest("PUT", "/api/v1/vm.boot")),
    "PUT /api/v1/vm.boot HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n",
  );
});

Deno.test("http: a request body goes out with its byte length", () => {
  assertEquals(
    dec.decode(encodeRequest("PUT", "/api/v1/vm.snapshot", '{"destination_url":"file:///é"}')),
    "PUT /api/v1/vm.snapshot HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n" +
      "Content-Type: application/json\r\nContent-Length: 32\r\n\r\n" +
      '{"destination_url":"file:///é"}',
  );
});

Deno.test("http: a path with spaces or control characters is refused", () => {
  assertThrows(() => encodeRequest("GET", "/api/v1/vm info"), /invalid request path/);
  assertThrows(() => encodeRequest("GET", "api/v1/vm.info"), /invalid request path/);
});

Deno.test("http: status lines with, without and with an empty reason phrase", () => {
  assertEquals(parseStatusLine("HTTP/1.1 204 "), 204);
  assertEquals(parseStatusLine("HTTP/1.1 200"), 200);
  assertEquals(parseStatusLine("HTTP/1.1 404 Not Found"), 404);
  assertThrows(() => parseStatusLine("HTTP/2 200"), /malformed status line/);
  assert(assertThrows(() => parseStatusLine("HTTP/1.1 20x")) instanceof HttpParseError);
});

Deno.test("http: a 204 without Content-Length is complete at the end of its headers", () => {
  const raw = enc.encode("HTTP/1.1 204 \r\nServer: Cloud Hypervisor API\r\n\r\nHTTP/1.1 200 ");
  const res = parseResponse(raw)!;
  assertEquals(res.status, 204);
  assertEquals(res.body.length, 0);
  assertEquals(res.consumed, 47);
  assertEquals(res.headers.get("server"), "Cloud Hypervisor API");
});

Deno.test("http: a Content-Length body waits for all its bytes", () => {
  const full = enc.encode(
    'HTTP/1.1 200 \r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"version":"54"}\n',
  );
  for (let cut = 0; cut < full.length; cut++) {
    assertEquals(parseResponse(full.subarray(0, cut)), undefined, `cut at ${cut}`);
  }
  const res = parseResponse(full)!;
  assertEquals(res.status, 200);
  assertEquals(dec.decode(res.body), '{"version":"54"}\n');
  assertEquals(res.consumed, full.length);
  assertThrows(
    () => parseResponse(full.subarray(0, full.length - 3), true),
    /closed after 14 of 17 body bytes/,
  );
});

Deno.test("http: chunked bodies are joined, extensions and trailers skipped", () => {
  const raw = enc.encode(
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: a\r\n\r\n",
  );
  const res = parseResponse(raw)!;
  assertEquals(dec.decode(res.body), "Wikipedia in \r\n\r\nchunks.");
  assertEquals(res.consumed, raw.length);
  assertEquals(parseResponse(raw.subarray(0, raw.length - 2)), undefined);
  assertThrows(() => decodeChunked(enc.encode("zz\r\n"), 0), /malformed chunk size/);
  assertThrows(() => decodeChunked(enc.encode("2\r\nabcd"), 0), /not terminated by CRLF/);
});

Deno.test("http: a body without length runs to EOF", () => {
  const raw = enc.encode('HTTP/1.1 500 \r\n\r\n["boom"]');
  assertEquals(parseResponse(raw, false), undefined);
  assertEquals(dec.decode(parseResponse(raw, true)!.body), '["boom"]');
  assertThrows(
    () => parseResponse(enc.encode("HTTP/1.1 200 \r\nA: b"), true),
    /inside response headers/,
  );
});

Deno.test("http: malformed headers are rejected", () => {
  assertThrows(() => parseResponse(enc.encode("HTTP/1.1 200 \r\nnocolon\r\n\r\n")), /header line/);
  assertThrows(
    () => parseResponse(enc.encode("HTTP/1.1 200 \r\nContent-Length: -1\r\n\r\n")),
    /content-length/,
  );
});

Deno.test("http: CH error bodies are JSON arrays of strings, joined outermost first", () => {
  assertEquals(
    errorText(enc.encode('["The VM could not be paused","VM is not running"]')),
    "The VM could not be paused: VM is not running",
  );
  assertEquals(errorText(enc.encode("plain text\n")), "plain text");
  assertEquals(errorText(enc.encode('{"a":1}')), '{"a":1}');
});

Deno.test("http: error chains are kept as messages; an empty body has none", () => {
  assertEquals(errorMessages(enc.encode('["a","b"]')), ["a", "b"]);
  assertEquals(errorMessages(enc.encode("oops")), ["oops"]);
  assertEquals(errorMessages(enc.encode("")), []);
  assertEquals(errorMessages(enc.encode('["a",1]')), ['["a",1]']);
});
