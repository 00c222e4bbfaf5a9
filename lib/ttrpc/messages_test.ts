/** The hand-encoded ttrpc Request/Response/Status messages, golden bytes and round trips. */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  decodeRequest,
  decodeResponse,
  decodeStatus,
  encodeRequest,
  encodeResponse,
  encodeStatus,
  metadataFromRecord,
  metadataToRecord,
} from "./messages.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
const unhex = (text: string) => Uint8Array.from(text.split(" "), (h) => parseInt(h, 16));

// Same bytes as Go's ttrpc.Request marshalled by gogo/protobuf (checked by the interop test).
const REQUEST_GOLDEN = "0a 03 73 76 63 12 01 4d 1a 02 01 02 20 80 94 eb dc 03 " +
  "2a 06 0a 01 6b 12 01 76 2a 06 0a 01 6b 12 01 77";

Deno.test("encodeRequest writes fields 1-5 in order, metadata as repeated KeyValue", () => {
  const bytes = encodeRequest({
    service: "svc",
    method: "M",
    payload: Uint8Array.of(1, 2),
    timeoutNano: 1_000_000_000n,
    metadata: [{ key: "k", value: "v" }, { key: "k", value: "w" }],
  });
  assertEquals(hex(bytes), REQUEST_GOLDEN);
});

Deno.test("encodeRequest omits proto3 defaults", () => {
  assertEquals(hex(encodeRequest({ service: "s", method: "m" })), "0a 01 73 12 01 6d");
  assertEquals(encodeRequest({ service: "", method: "" }).length, 0);
});

Deno.test("decodeRequest round-trips and keeps an int64 timeout exact", () => {
  const request = decodeRequest(unhex(REQUEST_GOLDEN));
  assertEquals(request.service, "svc");
  assertEquals(request.method, "M");
  assertEquals(Array.from(request.payload), [1, 2]);
  assertEquals(request.timeoutNano, 1_000_000_000n);
  assertEquals(request.metadata, [{ key: "k", value: "v" }, { key: "k", value: "w" }]);
  const big = decodeRequest(
    encodeRequest({ service: "a", method: "b", timeoutNano: 9_223_372_036_854_775_807n }),
  );
  assertEquals(big.timeoutNano, 9_223_372_036_854_775_807n);
});

Deno.test("decodeRequest skips unknown fields of every wire type", () => {
  // field 9 varint, field 10 fixed64, field 11 bytes, field 12 fixed32, then service "x".
  const bytes = unhex(
    "48 96 01 51 01 02 03 04 05 06 07 08 5a 02 aa bb 65 01 02 03 04 0a 01 78",
  );
  assertEquals(decodeRequest(bytes).service, "x");
});

Deno.test("decoders reject malformed input with a message naming the message", () => {
  assertThrows(() => decodeRequest(unhex("0a 05 73")), "malformed ttrpc.Request: length past end");
  assertThrows(() => decodeRequest(unhex("20 80")), "malformed ttrpc.Request: truncated varint");
  assertThrows(
    () => decodeRequest(unhex("08 01")),
    "malformed ttrpc.Request: field 1 has wire type 0, expected 2",
  );
  assertThrows(() => decodeRequest(unhex("4b")), "unsupported wire type 3");
  assertThrows(() => decodeRequest(unhex("0a 01 ff")), "not valid UTF-8");
  assertThrows(() => decodeResponse(unhex("0a 01 08")), "malformed google.rpc.Status");
});

Deno.test("encodeResponse: status always present, payload omitted when empty", () => {
  assertEquals(hex(encodeResponse({})), "0a 00");
  assertEquals(hex(encodeResponse({ payload: Uint8Array.of(9) })), "0a 00 12 01 09");
  assertEquals(
    hex(encodeResponse({ status: { code: 5, message: "nf" }, payload: Uint8Array.of(9) })),
    "0a 06 08 05 12 02 6e 66 12 01 09",
  );
});

Deno.test("decodeResponse reads status and payload; absent status stays undefined", () => {
  const response = decodeResponse(unhex("0a 06 08 05 12 02 6e 66 12 01 09"));
  assertEquals(response.status, { code: 5, message: "nf", details: [] });
  assertEquals(Array.from(response.payload), [9]);
  assertEquals(decodeResponse(unhex("12 01 09")).status, undefined);
  assertEquals(decodeResponse(new Uint8Array(0)).payload.length, 0);
});

Deno.test("Status encodes details as Any and negative codes sign-extended", () => {
  const bytes = encodeStatus({
    code: 3,
    message: "m",
    details: [{ typeUrl: "t", value: Uint8Array.of(1) }],
  });
  assertEquals(hex(bytes), "08 03 12 01 6d 1a 06 0a 01 74 12 01 01");
  assertEquals(decodeStatus(bytes), {
    code: 3,
    message: "m",
    details: [{ typeUrl: "t", value: Uint8Array.of(1) }],
  });
  const negative = encodeStatus({ code: -1 });
  assertEquals(hex(negative), "08 ff ff ff ff ff ff ff ff ff 01");
  assertEquals(decodeStatus(negative).code, -1);
  assertThrows(() => encodeStatus({ code: 2 ** 31 }), "status code 2147483648 is not an int32");
  assertThrows(() => encodeStatus({ code: 1.5 }), "status code 1.5 is not an int32");
});

Deno.test("metadata converts between entries and a record, keeping value order", () => {
  const entries = [{ key: "a", value: "1" }, { key: "b", value: "2" }, { key: "a", value: "3" }];
  assertEquals(metadataToRecord(entries), { a: ["1", "3"], b: ["2"] });
  assertEquals(metadataFromRecord({ a: ["1", "3"], b: ["2"] }), [
    { key: "a", value: "1" },
    { key: "a", value: "3" },
    { key: "b", value: "2" },
  ]);
  const odd = metadataToRecord([{ key: "__proto__", value: "x" }]);
  assertEquals(Object.keys(odd), ["__proto__"]);
});
