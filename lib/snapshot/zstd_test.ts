import { zstdDecompressSync } from "node:zlib";
import { assert, assertEquals, assertMatch, assertRejects } from "../../tests/assert.ts";
import { compressFrame, CompressPool } from "./compress_pool.ts";
import { DecompressPool } from "./decompress_pool.ts";
import { frameContentSize } from "./zstd_frames.ts";
import { nativeZstd } from "./zstd_native.ts";

const MiB = 1024 * 1024;

function sample(length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + (i >> 12)) & 0xff;
  return bytes;
}

Deno.test("frameContentSize reads the frame header's content size field", () => {
  const magic = [0x28, 0xb5, 0x2f, 0xfd];
  // single segment, 1-byte size
  assertEquals(frameContentSize(new Uint8Array([...magic, 0x20, 200])), 200);
  // 2-byte size (stored minus 256), window descriptor before it
  assertEquals(frameContentSize(new Uint8Array([...magic, 0x40, 0x58, 0x10, 0x00])), 0x10 + 256);
  // 4-byte size with checksum flag and a 1-byte dictionary id
  assertEquals(
    frameContentSize(new Uint8Array([...magic, 0x85, 0x58, 9, 0x00, 0x00, 0x40, 0x00])),
    4 * MiB,
  );
  // no size recorded; header cut short
  assertEquals(frameContentSize(new Uint8Array([...magic, 0x04, 0x58])), undefined);
  assertEquals(frameContentSize(new Uint8Array([...magic, 0x80, 0x58, 0])), undefined);
});

Deno.test("libzstd is loaded on this system (CI installs zstd, bookworm-slim ships libzstd1)", () => {
  assert(nativeZstd() !== undefined, "no libzstd.so.1: install libzstd1");
});

for (const backend of ["auto", "node"] as const) {
  Deno.test(`${backend} pool: frames record size and checksum, and decode back`, async () => {
    const chunk = sample(3 * MiB + 5);
    const compress = new CompressPool(2, backend);
    const decompress = new DecompressPool(2, 4 * MiB, backend);
    try {
      const buffer = chunk.slice().buffer;
      const [a, b] = await Promise.all([
        compress.compress(buffer.slice(0), chunk.length),
        compress.compress(buffer, 1000),
      ]);
      assertEquals(frameContentSize(a.frame), chunk.length);
      assertEquals(a.frame[4] & 0x04, 0x04, "checksum flag");
      assertEquals(new Uint8Array(b.buffer, 0, 1000), chunk.subarray(0, 1000));
      assertEquals(new Uint8Array(zstdDecompressSync(a.frame)), chunk);
      const frame = new Uint8Array(a.frame);
      assertEquals(await decompress.decompress(frame), chunk);
      // the node:zlib reference frame decodes too; over the output limit is refused
      assertEquals(await decompress.decompress(new Uint8Array(await compressFrame(chunk))), chunk);
      assertEquals(
        await decompress.decompress(new Uint8Array(await compressFrame(sample(5 * MiB)))),
        null,
      );
      frame[frame.length - 1] ^= 1;
      const error = await assertRejects(() => decompress.decompress(frame));
      assertMatch(error.message, /checksum/);
    } finally {
      compress.close();
      decompress.close();
    }
    await assertRejects(() => compress.compress(new ArrayBuffer(8), 8));
  });
}
