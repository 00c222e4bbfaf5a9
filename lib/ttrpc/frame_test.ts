/**
 * ttrpc framing, golden bytes: header encoding, limits, reassembly from any split, resynchronising
 * after oversized frames.
 */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameTooLargeError,
  MAX_MESSAGE_SIZE,
  MESSAGE_TYPE_REQUEST,
  MESSAGE_TYPE_RESPONSE,
} from "./frame.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");

Deno.test("encodeFrame writes the 10-byte big-endian header then the payload", () => {
  assertEquals(MAX_MESSAGE_SIZE, 4194304);
  assertEquals(
    hex(encodeFrame(1, MESSAGE_TYPE_REQUEST, 0, new Uint8Array([0xaa, 0xbb]))),
    "00 00 00 02 00 00 00 01 01 00 aa bb",
  );
  assertEquals(
    hex(encodeFrame(0x01020305, MESSAGE_TYPE_RESPONSE, 0x04, new Uint8Array(0))),
    "00 00 00 00 01 02 03 05 02 04",
  );
  assertEquals(
    hex(encodeFrame(0xffff_ffff, 2, 0, new Uint8Array(300)).subarray(0, 10)),
    "00 00 01 2c ff ff ff ff 02 00",
  );
});

Deno.test("encodeFrame refuses payloads over the limit and bad header fields", () => {
  encodeFrame(1, 1, 0, new Uint8Array(MAX_MESSAGE_SIZE));
  const err = assertThrows(
    () => encodeFrame(3, 1, 0, new Uint8Array(MAX_MESSAGE_SIZE + 1)),
    "cannot send a 4194305-byte message on stream 3, over the 4194304-byte limit",
  );
  assertEquals(err instanceof FrameTooLargeError, true);
  assertThrows(() => encodeFrame(1, 1, 0, new Uint8Array(11), 10), "over the 10-byte limit");
  assertThrows(() => encodeFrame(-1, 1, 0, new Uint8Array(0)), "stream id -1 is not a u32");
  assertThrows(() => encodeFrame(2 ** 32, 1, 0, new Uint8Array(0)), "is not a u32");
  assertThrows(() => encodeFrame(1, 256, 0, new Uint8Array(0)), "message type 256 is not a u8");
  assertThrows(() => encodeFrame(1, 1, 1.5, new Uint8Array(0)), "flags 1.5 is not a u8");
});

function framesOf(...specs: [number, number, number, number[]][]): Uint8Array {
  const parts = specs.map(([id, type, flags, payload]) =>
    encodeFrame(id, type, flags, Uint8Array.from(payload))
  );
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const summary = (frames: Frame[]) =>
  frames.map((f) => `${f.streamId}/${f.type}/${f.flags}:${Array.from(f.payload).join(",")}`);

Deno.test("FrameDecoder reassembles frames from every split and from coalesced chunks", () => {
  const stream = framesOf([1, 1, 0, [1, 2, 3]], [3, 2, 7, []], [5, 1, 0, [9]]);
  const expected = ["1/1/0:1,2,3", "3/2/7:", "5/1/0:9"];
  assertEquals(summary(new FrameDecoder().push(stream)), expected);
  // Every split point, two chunks.
  for (let cut = 0; cut <= stream.length; cut++) {
    const decoder = new FrameDecoder();
    const frames = [
      ...decoder.push(stream.subarray(0, cut)),
      ...decoder.push(stream.subarray(cut)),
    ];
    assertEquals(summary(frames), expected, `split at ${cut}`);
    assertEquals(decoder.buffered, 0);
  }
  // One byte at a time.
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  for (const b of stream) frames.push(...decoder.push(Uint8Array.of(b)));
  assertEquals(summary(frames), expected);
});

Deno.test("FrameDecoder reports a partial frame as buffered bytes", () => {
  const decoder = new FrameDecoder();
  const stream = framesOf([1, 1, 0, [1, 2, 3]]);
  assertEquals(decoder.push(stream.subarray(0, 4)), []);
  assertEquals(decoder.buffered, 4);
  assertEquals(decoder.push(stream.subarray(4, 11)), []);
  assertEquals(decoder.buffered, 11);
  assertEquals(summary(decoder.push(stream.subarray(11))), ["1/1/0:1,2,3"]);
  assertEquals(decoder.buffered, 0);
});

Deno.test("FrameDecoder payloads do not alias the pushed chunk", () => {
  const chunk = framesOf([1, 1, 0, [7, 7]]);
  const [frame] = new FrameDecoder().push(chunk);
  chunk.fill(0);
  assertEquals(Array.from(frame.payload), [7, 7]);
});

Deno.test("FrameDecoder throws on a header announcing more than the limit", () => {
  const header = Uint8Array.of(0x00, 0x40, 0x00, 0x01, 0, 0, 0, 9, 2, 0);
  const err = assertThrows(
    () => new FrameDecoder().push(header),
    "received a 4194305-byte message on stream 9, over the 4194304-byte limit",
  ) as FrameTooLargeError;
  assertEquals([err.length, err.limit, err.streamId], [4194305, 4194304, 9]);
  assertThrows(() => new FrameDecoder({ maxMessageSize: 2 }).push(framesOf([1, 1, 0, [1, 2, 3]])));
});

Deno.test("FrameDecoder in skipOversized mode reports the frame and resynchronises", () => {
  const stream = framesOf([1, 2, 0, [1, 2, 3, 4, 5]], [3, 2, 0, [6]]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const decoder = new FrameDecoder({ maxMessageSize: 4, skipOversized: true });
    const frames = [
      ...decoder.push(stream.subarray(0, cut)),
      ...decoder.push(stream.subarray(cut)),
    ];
    assertEquals(
      frames.map((f) => [f.streamId, f.oversizedLength, Array.from(f.payload)]),
      [[1, 5, []], [3, undefined, [6]]],
      `split at ${cut}`,
    );
    assertEquals(decoder.buffered, 0);
  }
});
