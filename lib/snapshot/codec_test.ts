import { zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { assert, assertEquals, assertMatch, assertRejects } from "../../tests/assert.ts";
import { extents } from "../sparse/extents.ts";
import { type PackOptions, packSparseFile, packSparseFileToFile, packStream } from "./encode.ts";
import type { ZstdBackend } from "./compress_pool.ts";
import { unpackFileToFile, unpackToFile, unpackToStream } from "./decode.ts";
import { encodeHeader, encodeI64 } from "./format.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** A sparse file of `size` bytes with `regions` ([offset, length, fill]) written. */
async function sparseFile(
  dir: string,
  name: string,
  size: number,
  regions: [number, number, number][],
) {
  const path = `${dir}/${name}`;
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  await f.truncate(size);
  for (const [off, len, fill] of regions) {
    await f.seek(off, Deno.SeekMode.Start);
    const data = new Uint8Array(len);
    for (let i = 0; i < len; i++) data[i] = (fill + (i % 251)) & 0xff;
    await f.write(data);
  }
  return path;
}

/** Thread settings both codecs are tested with: inline, libzstd threads, node:zlib workers. */
const DECODERS: { workers: number; zstd?: ZstdBackend }[] = [
  { workers: 0 },
  { workers: 2, zstd: "auto" },
  { workers: 2, zstd: "node" },
];

async function packToBytes(
  path: string,
  options: PackOptions = {},
  chunkSize?: number,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await packSparseFile(path, new WritableStream({ write: (c) => void chunks.push(c.slice()) }), {
    ...options,
    chunkSize,
  });
  return concat(chunks);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function streamOf(bytes: Uint8Array, piece = 7 * KiB): ReadableStream<Uint8Array> {
  let pos = 0;
  return new ReadableStream({
    pull(controller) {
      if (pos >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(pos, pos + piece));
      pos += piece;
    },
  });
}

async function allocated(path: string): Promise<number> {
  const out = await new Deno.Command("stat", { args: ["-c", "%b %B", path] }).output();
  const [blocks, unit] = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
  return blocks * unit;
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "snapshot-codec-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function sameExtents(a: string, b: string) {
  const list = async (p: string) => {
    const out: [number, number][] = [];
    for await (const e of extents(p)) out.push([e[0], e[1]]);
    return out;
  };
  assertEquals(await list(b), await list(a));
}

Deno.test("golden: 8 KiB file with one 4 KiB extent at 4 KiB", async () => {
  await withDir(async (dir) => {
    const src = await sparseFile(dir, "src", 8 * KiB, [[4 * KiB, 4 * KiB, 0x41]]);
    const encoded = await packToBytes(src);
    assertEquals(
      Array.from(encoded.subarray(0, 12)),
      [0x41, 0x54, 0x45, 0x53, 0x50, 0x52, 0x53, 0x45, 2, 0, 0, 0],
    );
    const body = zstdDecompressSync(encoded.subarray(12));
    const expected = new Uint8Array(8 + 16 + 4096 + 8);
    const view = new DataView(expected.buffer);
    view.setBigInt64(0, 8192n, true);
    view.setBigInt64(8, 4096n, true);
    view.setBigInt64(16, 4096n, true);
    for (let i = 0; i < 4096; i++) expected[24 + i] = (0x41 + (i % 251)) & 0xff;
    view.setBigInt64(24 + 4096, -1n, true);
    assertEquals(new Uint8Array(body), expected);
    // The sentinel is exactly eight 0xff bytes with no length after it.
    assertEquals(Array.from(body.subarray(body.length - 8)), new Array(8).fill(0xff));
  });
});

const CASES: [string, number, [number, number, number][]][] = [
  ["empty", 0, []],
  ["all-hole", 4 * MiB, []],
  ["all-data", 256 * KiB, [[0, 256 * KiB, 1]]],
  ["leading hole", 2 * MiB, [[1 * MiB, 64 * KiB, 2]]],
  ["trailing hole", 2 * MiB, [[0, 64 * KiB, 3]]],
  ["extent at EOF", 3 * MiB + 4 * KiB, [[3 * MiB, 4 * KiB, 4]]],
  ["unaligned EOF", 1 * MiB + 100, [[1 * MiB, 100, 5]]],
  ["many extents across chunks", 24 * MiB, [
    [0, 4 * KiB, 6],
    [2 * MiB, 3 * MiB + 12 * KiB, 7],
    [9 * MiB, 5 * MiB, 8],
    [20 * MiB, 8 * KiB, 9],
  ]],
];

for (const [name, size, regions] of CASES) {
  Deno.test(`round trip: ${name} (file and stream, pool and inline)`, async () => {
    await withDir(async (dir) => {
      const src = await sparseFile(dir, "src", size, regions);
      for (const [i, options] of DECODERS.entries()) {
        const encoded = await packToBytes(src, options, 1 * MiB);
        const dst = `${dir}/dst-${i}`;
        const stats = await unpackToFile(streamOf(encoded), dst, options);
        assertEquals(stats.logicalSize, size);
        assert(stats.sparse);
        assertEquals(await Deno.readFile(dst), await Deno.readFile(src));
        await sameExtents(src, dst);
        const populated = regions.reduce((n, r) => n + r[1], 0);
        assert(await allocated(dst) <= Math.ceil(populated / (4 * KiB)) * 4 * KiB + 64 * KiB);
        const streamed: Uint8Array[] = [];
        await unpackToStream(
          streamOf(encoded),
          new WritableStream({ write: (c) => void streamed.push(c.slice()) }),
        );
        assertEquals(concat(streamed), await Deno.readFile(src));
      }
      assertEquals(
        await Array.fromAsync(Deno.readDir(dir)).then((e) => e.length),
        1 + DECODERS.length,
      );
    });
  });
}

Deno.test("interop: the zstd CLI decodes the body after the 12-byte header", async () => {
  await withDir(async (dir) => {
    const src = await sparseFile(dir, "src", 6 * MiB, [[0, 4 * KiB, 1], [5 * MiB, 1 * MiB, 2]]);
    const encoded = await packToBytes(src, { workers: 2 }, 1 * MiB);
    await Deno.writeFile(`${dir}/body.zst`, encoded.subarray(12));
    const out = await new Deno.Command("zstd", {
      args: ["-d", "-q", "-c", `${dir}/body.zst`],
      stdout: "piped",
    }).output();
    assert(out.success, "zstd -d failed");
    const data = await Deno.readFile(src);
    const expected = concat([
      encodeI64(6 * MiB, 0, 4 * KiB),
      data.subarray(0, 4 * KiB),
      encodeI64(5 * MiB, 1 * MiB),
      data.subarray(5 * MiB),
      encodeI64(-1),
    ]);
    assertEquals(out.stdout, expected);
  });
});

Deno.test("plain zstd from the zstd CLI decodes to the dense content, zero blocks as holes", async () => {
  await withDir(async (dir) => {
    const content = new Uint8Array(3 * MiB + 17);
    content.fill(0x5a, 0, 100 * KiB);
    content.fill(0x33, 3 * MiB, 3 * MiB + 17);
    await Deno.writeFile(`${dir}/dense`, content);
    const z = await new Deno.Command("zstd", {
      args: ["-q", "-3", `${dir}/dense`, "-o", `${dir}/dense.zst`],
    }).output();
    assert(z.success);
    const stats = await unpackToFile(
      streamOf(await Deno.readFile(`${dir}/dense.zst`)),
      `${dir}/out`,
    );
    assertEquals(stats.sparse, false);
    assertEquals(stats.logicalSize, content.length);
    assertEquals(await Deno.readFile(`${dir}/out`), content);
    assert(await allocated(`${dir}/out`) <= 256 * KiB, "zero blocks were written");
  });
});

Deno.test("plain zstd: concatenated frames and skippable frames decode as one stream", async () => {
  await withDir(async (dir) => {
    const a = new TextEncoder().encode("first frame ".repeat(1000));
    const b = new TextEncoder().encode("second frame ".repeat(1000));
    const skippable = new Uint8Array([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
    const input = concat([zstdCompressSync(a), skippable, zstdCompressSync(b)]);
    await unpackToFile(streamOf(input, 5), `${dir}/out`);
    assertEquals(await Deno.readFile(`${dir}/out`), concat([a, b]));
  });
});

Deno.test("file to file: incompressible frames larger than a read chunk round-trip", async () => {
  await withDir(async (dir) => {
    // Random bytes: frames stay as large compressed, so 1.3 MiB frames straddle the decoder's
    // 4 MiB reads at varying points and outgrow recycled 1 MiB frame buffers mid-frame; the
    // default 4 MiB frames span whole reads.
    const src = `${dir}/src`;
    const data = new Uint8Array(9 * MiB);
    for (let i = 0; i < data.length; i += 65536) {
      crypto.getRandomValues(data.subarray(i, i + 65536));
    }
    await Deno.writeFile(src, new Uint8Array());
    await Deno.truncate(src, 64 * MiB);
    using f = await Deno.open(src, { write: true });
    await f.seek(32 * MiB, Deno.SeekMode.Start);
    for (let o = 0; o < data.length;) o += await f.write(data.subarray(o));
    const cases: { workers: number; zstd?: ZstdBackend; chunkSize?: number }[] = [
      ...DECODERS,
      ...DECODERS.map((o) => ({ ...o, chunkSize: 1300 * KiB })),
    ];
    for (const [i, options] of cases.entries()) {
      const packed = await packSparseFileToFile(src, `${dir}/packed-${i}`, options);
      assertEquals(packed.dataBytes, data.length);
      assertEquals(
        await Deno.readFile(`${dir}/packed-${i}`),
        await packToBytes(src, options, options.chunkSize),
        "packSparseFileToFile writes what packSparseFile streams",
      );
      const stats = await unpackFileToFile(`${dir}/packed-${i}`, `${dir}/out-${i}`, options);
      assertEquals(stats.logicalSize, 64 * MiB);
      assertEquals(await Deno.readFile(`${dir}/out-${i}`), await Deno.readFile(src));
      await sameExtents(src, `${dir}/out-${i}`);
    }
  });
});

Deno.test("pooled decoding falls back to streaming for frames with large output", async () => {
  await withDir(async (dir) => {
    // 40 MiB of a repeated byte is a tiny frame whose output exceeds the pool's 16 MiB limit.
    const content = new Uint8Array(40 * MiB).fill(0x61);
    content.set(new TextEncoder().encode("end"), content.length - 3);
    const input = zstdCompressSync(content);
    assert(input.length < 64 * KiB);
    for (const [i, options] of DECODERS.entries()) {
      const stats = await unpackToFile(streamOf(input), `${dir}/out-${i}`, options);
      assertEquals(stats.logicalSize, content.length);
      assertEquals(await Deno.readFile(`${dir}/out-${i}`), content);
    }
  });
});

Deno.test("packStream writes plain zstd that unpack reads back", async () => {
  await withDir(async (dir) => {
    const content = new Uint8Array(5 * MiB + 3).map((_, i) => (i * 7) & 0xff);
    const chunks: Uint8Array[] = [];
    await packStream(
      streamOf(content, 100 * KiB),
      new WritableStream({ write: (c) => void chunks.push(c) }),
      {
        chunkSize: 1 * MiB,
      },
    );
    const encoded = concat(chunks);
    assertEquals(Array.from(encoded.subarray(0, 4)), [0x28, 0xb5, 0x2f, 0xfd]);
    await unpackToFile(streamOf(encoded), `${dir}/out`);
    assertEquals(await Deno.readFile(`${dir}/out`), content);
  });
});

/** A sparse-format stream with arbitrary fields, compressed as one frame. */
function craft(version: number, fields: (number | Uint8Array)[], header = true): Uint8Array {
  const body = concat(fields.map((f) => typeof f === "number" ? encodeI64(f) : f));
  const head = encodeHeader();
  new DataView(head.buffer).setUint32(8, version, true);
  return concat([header ? head : new Uint8Array(), zstdCompressSync(body)]);
}

const REJECTS: [string, Uint8Array, string][] = [
  [
    "unknown version",
    craft(3, [0, -1]),
    "unsupported sparse snapshot format version 3 (this build reads 2); pack it again with a matching version",
  ],
  ["negative size", craft(2, [-5, -1]), "negative image size -5 in the stream header"],
  [
    "extent past the end",
    craft(2, [100, 50, 100, new Uint8Array(100), -1]),
    "extent out of range (offset=50 length=100 size=100)",
  ],
  [
    "negative offset",
    craft(2, [100, -5, 1, new Uint8Array(1), -1]),
    "extent out of range (offset=-5 size=100)",
  ],
  [
    "offset past the size",
    craft(2, [100, 101, 0, -1]),
    "extent out of range (offset=101 size=100)",
  ],
  [
    "negative length",
    craft(2, [100, 0, -1, -1]),
    "extent out of range (offset=0 length=-1 size=100)",
  ],
  [
    "overlapping",
    craft(2, [100, 0, 10, new Uint8Array(10), 5, 1, new Uint8Array(1), -1]),
    "extent at offset 5 overlaps or precedes the previous extent ending at 10",
  ],
  [
    "descending",
    craft(2, [100, 50, 10, new Uint8Array(10), 0, 1, new Uint8Array(1), -1]),
    "extent at offset 0 overlaps or precedes the previous extent ending at 60",
  ],
  [
    "missing sentinel",
    craft(2, [100, 0, 10, new Uint8Array(10)]),
    "truncated stream: missing end sentinel after 1 extents",
  ],
  [
    "data cut short",
    craft(2, [100, 0, 10, new Uint8Array(4)]),
    "truncated stream: it ended inside the extent data at offset 4 (6 bytes missing)",
  ],
  ["no size", craft(2, []), "truncated stream: it ended before the image size"],
  [
    "trailing bytes after the sentinel",
    craft(2, [100, -1, 7]),
    "trailing data after the end sentinel (8 more bytes); the stream is corrupt",
  ],
  ["header only", encodeHeader(), "empty zstd stream: no frames"],
  ["header cut", encodeHeader().subarray(0, 10), "truncated stream: it ended inside the header"],
  ["empty input", new Uint8Array(), "empty input: not a snapshot stream"],
  [
    "not zstd",
    new TextEncoder().encode("hello, this is not zstd"),
    "not a zstd stream (bad frame magic 0x6c6c6568 at compressed byte 4)",
  ],
];

for (const [name, input, message] of REJECTS) {
  Deno.test(`rejects ${name} and leaves nothing behind`, async () => {
    await withDir(async (dir) => {
      const error = await assertRejects(() => unpackToFile(streamOf(input, 3), `${dir}/out`));
      assertEquals(error.message, message);
      assert(!error.message.includes("\n"));
      assertEquals(await Array.fromAsync(Deno.readDir(dir)), []);
    });
  });
}

Deno.test("rejects a compressed stream cut inside a frame, and garbage after it", async () => {
  await withDir(async (dir) => {
    const src = await sparseFile(dir, "src", 1 * MiB, [[0, 64 * KiB, 1]]);
    const encoded = await packToBytes(src);
    await Deno.remove(src);
    for (const cut of [13, 20, encoded.length - 1]) {
      const error = await assertRejects(() =>
        unpackToFile(streamOf(encoded.subarray(0, cut)), `${dir}/out`)
      );
      assertEquals(
        error.message,
        "truncated stream: the compressed input ended inside zstd frame 1",
      );
    }
    const garbage = concat([encoded, new Uint8Array([1, 2, 3, 4, 5])]);
    const error = await assertRejects(() => unpackToFile(streamOf(garbage), `${dir}/out`));
    assertEquals(
      error.message,
      "trailing garbage after the zstd stream (bad frame magic 0x4030201 after frame 1)",
    );
    const corrupt = encoded.slice();
    corrupt[corrupt.length - 2] ^= 0xff; // inside the content checksum
    for (const options of DECODERS) {
      const bad = await assertRejects(() => unpackToFile(streamOf(corrupt), `${dir}/out`, options));
      assertMatch(bad.message, /^corrupt zstd data: .*Restored data doesn't match checksum$/);
    }
    assertEquals(await Array.fromAsync(Deno.readDir(dir)), []);
  });
});

Deno.test("a rejected input leaves an existing destination untouched", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/out`, "previous");
    await assertRejects(
      () => unpackToFile(streamOf(craft(2, [10])), `${dir}/out`),
      "missing end sentinel",
    );
    assertEquals(await Deno.readTextFile(`${dir}/out`), "previous");
    assertEquals((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["out"]);
  });
});

Deno.test("accepts zero-length extents, as upstream's reader does", async () => {
  await withDir(async (dir) => {
    const data = new Uint8Array(4).fill(7);
    const input = craft(2, [16, 0, 0, 4, 0, 4, 4, data, 16, 0, -1]);
    const stats = await unpackToFile(streamOf(input), `${dir}/out`);
    assertEquals(stats.logicalSize, 16);
    assertEquals(
      Array.from(await Deno.readFile(`${dir}/out`)),
      [0, 0, 0, 0, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0],
    );
  });
});
