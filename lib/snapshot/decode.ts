/**
 * Streaming decoder: reads a sparse-extent stream (or plain zstd) from any byte stream and writes
 * the image to a file, leaving holes unwritten, or to a byte stream with the holes as zeros.
 *
 * Contract for files: the output is built under a temporary name in the destination directory and
 * renamed over the destination only when the whole stream decoded and validated; on any error the
 * temporary file is removed and the destination is untouched. Memory is bounded: the compressed
 * input is split into zstd frames and each frame is decompressed as a stream.
 *
 * @module
 */
import { BodyParser, checkVersion, FormatError, hasMagic, HEADER_LENGTH, MAGIC } from "./format.ts";
import { FrameScanner, type FrameSegment } from "./zstd_frames.ts";
import { type Digest, digestZeros } from "./encode.ts";
import { DecompressPool } from "./decompress_pool.ts";
import { BufferPool, detach } from "./workers.ts";
import { defaultWorkers, type ZstdBackend } from "./compress_pool.ts";
import { writeViaTemp } from "./files.ts";
import { pwriteOffThread, truncateFd } from "../ffi/pio.ts";

/** Counters passed to `onProgress` and returned at the end. */
export interface UnpackStats {
  /** Compressed bytes read. */
  compressedBytes: number;
  /** Logical size of the image (holes included); grows as a plain stream decodes. */
  logicalSize: number;
  /** Image bytes written (sparse: populated extents; plain: non-zero blocks). */
  writtenBytes: number;
  /** True when the input was the sparse-extent format. */
  sparse: boolean;
}

export interface UnpackOptions {
  onProgress?: (stats: UnpackStats) => void;
  /**
   * Decompression threads for frames that record a content size of at most 16 MiB (the encoder's
   * frames do); default every core; 0 decodes every frame as a stream on this thread.
   */
  workers?: number;
  /** zstd implementation: libzstd when present (default), or node:zlib workers. */
  zstd?: ZstdBackend;
  /** Fed the decoded logical content in order (holes as zeros), e.g. a node:crypto Hash. */
  digest?: Digest;
}

/** Wraps `sink` so `digest` sees every logical byte, holes as zeros. */
function digestingSink(sink: ImageSink, digest: Digest): ImageSink {
  let position = 0;
  return {
    async write(offset, bytes) {
      digestZeros(digest, offset - position);
      digest.update(bytes);
      position = offset + bytes.length;
      await sink.write(offset, bytes);
    },
    afterWrites: (fn) => sink.afterWrites(fn),
    async resize(size, final) {
      if (final) digestZeros(digest, size - position);
      await sink.resize(size, final);
    },
  };
}

/** Where decoded bytes go. Offsets passed to `write` only ascend. */
interface ImageSink {
  /** May return before the bytes are written: keep `bytes` intact until {@link afterWrites}. */
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** Runs `fn` once every write issued so far has completed. */
  afterWrites(fn: () => void): void;
  /** Sets the size: at the end (`final`), and for sparse streams also as soon as it is known. */
  resize(size: number, final: boolean): Promise<void>;
}

const DECOMPRESS_CHUNK = 1 << 20;
/** Frames up to this compressed size go to the worker pool; larger ones stream on this thread. */
const POOL_FRAME_LIMIT = 8 << 20;
/** A pooled frame whose output exceeds this is decoded again as a stream (bounded memory). */
const POOL_OUTPUT_LIMIT = 16 << 20;
/** Plain zstd: all-zero blocks of this size (aligned in the image) are left as holes. */
const ZERO_BLOCK = 64 << 10;

/** Compressed input, chunk by chunk. */
interface ChunkInput {
  /** The next chunk, or null at the end. */
  read(): Promise<Uint8Array | null>;
  /**
   * True when a chunk is valid only until the next {@link read} (a reused buffer): whoever keeps
   * bytes beyond that copies them.
   */
  readonly transient: boolean;
  /** Stops reading early (on error). */
  cancel(): Promise<void>;
  /** Releases the input at the end, whatever happened. */
  close(): void;
}

function streamInput(input: ReadableStream<Uint8Array>): ChunkInput {
  const reader = input.getReader();
  return {
    transient: false,
    async read() {
      const { value, done } = await reader.read();
      return done ? null : value;
    },
    cancel: () => reader.cancel().catch(() => {}),
    close: () => reader.releaseLock(),
  };
}

/** Compressed bytes read from a file per chunk (one reused buffer). */
const FILE_CHUNK = 4 << 20;

function fileInput(file: Deno.FsFile): ChunkInput {
  const buffer = new Uint8Array(FILE_CHUNK);
  let open = true;
  return {
    transient: true,
    async read() {
      const n = await file.read(buffer);
      return n === null ? null : buffer.subarray(0, n);
    },
    cancel: () => Promise.resolve(),
    close() {
      if (open) file.close();
      open = false;
    },
  };
}

/** Pulls frame segments out of the compressed input, counting bytes. */
class FrameSource {
  #input: ChunkInput;
  #scanner = new FrameScanner();
  #pending: FrameSegment[] = [];
  #prefix: Uint8Array | undefined;

  constructor(input: ChunkInput, prefix: Uint8Array, readonly stats: UnpackStats) {
    this.#input = input;
    this.#prefix = prefix.length ? prefix : undefined;
  }

  /** See {@link ChunkInput.transient}: segments are views valid until the next {@link next}. */
  get transient(): boolean {
    return this.#input.transient;
  }

  get frames(): number {
    return this.#scanner.frames;
  }

  async next(): Promise<FrameSegment | null> {
    while (this.#pending.length === 0) {
      let chunk = this.#prefix;
      this.#prefix = undefined;
      if (!chunk) {
        const value = await this.#input.read();
        if (!value) {
          this.#scanner.finish();
          return null;
        }
        this.stats.compressedBytes += value.length;
        chunk = value;
      }
      this.#pending = this.#scanner.push(chunk);
    }
    return this.#pending.shift()!;
  }

  /** The rest of the frame opened by `first` (copies when the input is transient). */
  async *frame(first: FrameSegment): AsyncGenerator<Uint8Array> {
    const own = (bytes: Uint8Array) => this.transient ? bytes.slice() : bytes;
    yield own(first.bytes);
    for (let segment = first; !segment.last;) {
      const next = await this.next();
      if (!next) {
        throw new FormatError("truncated stream: the compressed input ended inside a frame");
      }
      segment = next;
      yield own(segment.bytes);
    }
  }
}

/**
 * Decompresses one whole zstd frame, fed from `frame` while its output is consumed (writing the
 * input directly is about twice as fast as piping a Readable into the decompressor).
 */
async function* decompressFrame(
  frame: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  // Imported here: only this fallback needs node:zlib (see ZSTD_PARAMS in compress_pool.ts).
  const { createZstdDecompress } = await import("node:zlib");
  const decompressor = createZstdDecompress({ chunkSize: DECOMPRESS_CHUNK });
  const settled = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        decompressor.off("drain", done);
        decompressor.off("close", done);
        resolve();
      };
      decompressor.on("drain", done);
      decompressor.on("close", done);
    });
  const feed = (async () => {
    try {
      for await (const bytes of frame) {
        if (decompressor.destroyed) return;
        if (!decompressor.write(bytes)) await settled();
      }
      decompressor.end();
    } catch (e) {
      decompressor.destroy(e as Error);
    }
  })();
  try {
    for await (const out of decompressor) yield out as Uint8Array;
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(`corrupt zstd data: ${(e as Error).message}`);
  } finally {
    decompressor.destroy();
    await feed;
  }
}

/** Reads at least `n` leading bytes (fewer at end of input); returns a copy. */
async function readHead(input: ChunkInput, n: number) {
  const parts: Uint8Array[] = [];
  let have = 0;
  while (have < n) {
    const value = await input.read();
    if (!value) break;
    parts.push(input.transient ? value.slice() : value);
    have += value.length;
  }
  const all = new Uint8Array(have);
  let pos = 0;
  for (const p of parts) {
    all.set(p, pos);
    pos += p.length;
  }
  return all;
}

/** Decodes `input` into `sink`; validates everything before returning. */
async function decodeInto(
  input: ChunkInput,
  sink: ImageSink,
  options: UnpackOptions,
  skipZeroBlocks: boolean,
): Promise<UnpackStats> {
  const stats: UnpackStats = { compressedBytes: 0, logicalSize: 0, writtenBytes: 0, sparse: false };
  if (options.digest) sink = digestingSink(sink, options.digest);
  try {
    const head = await readHead(input, HEADER_LENGTH);
    stats.compressedBytes = head.length;
    if (head.length === 0) throw new FormatError("empty input: not a snapshot stream");
    stats.sparse = hasMagic(head);
    let rest = head;
    if (stats.sparse) {
      if (head.length < HEADER_LENGTH) {
        throw new FormatError("truncated stream: it ended inside the header");
      }
      checkVersion(head);
      rest = head.subarray(HEADER_LENGTH);
    } else if (
      head.length < MAGIC.length && MAGIC.subarray(0, head.length).every((b, i) => b === head[i])
    ) {
      throw new FormatError("truncated stream: it ended inside the header");
    }
    const source = new FrameSource(input, rest, stats);
    const consume = stats.sparse
      ? sparseConsumer(sink, stats)
      : plainConsumer(sink, stats, skipZeroBlocks);
    const workers = options.workers ?? defaultWorkers();
    const pool = workers > 0
      ? new DecompressPool(workers, POOL_OUTPUT_LIMIT, options.zstd)
      : undefined;
    try {
      await decodeFrames(source, consume, pool, () => options.onProgress?.(stats));
    } finally {
      pool?.close();
    }
    if (source.frames === 0) throw new FormatError("empty zstd stream: no frames");
    await consume.finish();
    options.onProgress?.(stats);
    return stats;
  } catch (e) {
    await input.cancel();
    throw e;
  } finally {
    input.close();
  }
}

/**
 * Decompresses every frame in order into `consume`. Whole frames up to POOL_FRAME_LIMIT go to the
 * pool (at most 2 per worker in flight, results taken in order); larger frames, and frames whose
 * output is too large for the pool, stream through a decompressor on this thread.
 */
async function decodeFrames(
  source: FrameSource,
  consume: Consumer,
  pool: DecompressPool | undefined,
  progress: () => void,
): Promise<void> {
  const inFlight: { frame: Uint8Array; out: Promise<Uint8Array | null> }[] = [];
  const frames = new BufferPool(pool ? 2 * pool.size + 1 : 0);
  const stream = async (frame: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) => {
    for await (const plain of decompressFrame(frame)) {
      await consume.push(plain);
      progress();
      // The decompressor fills 1 MiB buffers in slices; once a slice reaches a buffer's end, the
      // whole buffer has been consumed and can be freed now (see detach).
      if (plain.byteOffset + plain.length === plain.buffer.byteLength) {
        consume.afterWrites(() => detach(plain));
      }
    }
  };
  const takeOldest = async () => {
    const { frame, out } = inFlight.shift()!;
    let plain: Uint8Array | null;
    try {
      plain = await out;
    } catch (e) {
      throw new FormatError(`corrupt zstd data: ${(e as Error).message}`);
    }
    if (plain === null) {
      await stream([frame]);
    } else {
      await consume.push(plain);
      progress();
      consume.afterWrites(() => pool!.recycle(plain!));
    }
    frames.put(frame);
  };
  try {
    for (let first = await source.next(); first; first = await source.next()) {
      if (!pool) {
        await stream(source.frame(first));
        continue;
      }
      // Segments are copied into a pooled buffer at once (the input's may be reused).
      const whole = (n: number) => new Uint8Array(frames.get(n).buffer);
      let buffer = whole(first.bytes.length);
      let size = 0;
      const add = (bytes: Uint8Array) => {
        if (size + bytes.length > buffer.length) {
          const bigger = whole(2 * (size + bytes.length));
          bigger.set(buffer.subarray(0, size));
          frames.put(buffer);
          buffer = bigger;
        }
        buffer.set(bytes, size);
        size += bytes.length;
      };
      add(first.bytes);
      let segment = first;
      while (!segment.last && size <= POOL_FRAME_LIMIT) {
        const next = await source.next();
        if (!next) {
          throw new FormatError("truncated stream: the compressed input ended inside a frame");
        }
        segment = next;
        add(segment.bytes);
      }
      const frame = new Uint8Array(buffer.buffer, 0, size);
      if (!segment.last) {
        while (inFlight.length) await takeOldest();
        const last = segment;
        await stream((async function* () {
          yield frame;
          yield* source.frame({ ...last, bytes: new Uint8Array() });
        })());
        frames.put(frame);
        continue;
      }
      inFlight.push({ frame, out: pool.decompress(frame) });
      if (inFlight.length >= 2 * pool.size) await takeOldest();
    }
    while (inFlight.length) await takeOldest();
  } finally {
    for (const job of inFlight) job.out.catch(() => {});
  }
}

interface Consumer {
  push(plain: Uint8Array): Promise<void>;
  /** Runs `fn` once the data of every chunk pushed so far is written. */
  afterWrites(fn: () => void): void;
  finish(): Promise<void>;
}

function sparseConsumer(sink: ImageSink, stats: UnpackStats): Consumer {
  const parser = new BodyParser();
  return {
    async push(plain) {
      for (const event of parser.push(plain)) {
        if (event.kind === "size") {
          stats.logicalSize = event.size;
          await sink.resize(event.size, false);
        } else if (event.kind === "data") {
          await sink.write(event.offset, event.bytes);
          stats.writtenBytes += event.bytes.length;
        }
      }
    },
    afterWrites: (fn) => sink.afterWrites(fn),
    async finish() {
      parser.finish();
      await sink.resize(parser.size, true);
    },
  };
}

function plainConsumer(sink: ImageSink, stats: UnpackStats, skipZeroBlocks: boolean): Consumer {
  return {
    async push(plain) {
      let pos = 0;
      while (pos < plain.length) {
        const offset = stats.logicalSize;
        const n = skipZeroBlocks
          ? Math.min(plain.length - pos, ZERO_BLOCK - (offset % ZERO_BLOCK))
          : plain.length - pos;
        const piece = plain.subarray(pos, pos + n);
        if (!skipZeroBlocks || !isZero(piece)) {
          await sink.write(offset, piece);
          stats.writtenBytes += n;
        }
        stats.logicalSize += n;
        pos += n;
      }
    },
    afterWrites: (fn) => sink.afterWrites(fn),
    async finish() {
      await sink.resize(stats.logicalSize, true);
    },
  };
}

function isZero(bytes: Uint8Array): boolean {
  const words = bytes.byteOffset % 4 === 0 ? Math.floor(bytes.length / 4) : 0;
  const view = new Uint32Array(bytes.buffer, bytes.byteOffset, words);
  for (let i = 0; i < view.length; i++) if (view[i] !== 0) return false;
  for (let i = words * 4; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** Writes a file sink queues before `write` waits. */
const MAX_QUEUED_WRITES = 8;

/**
 * A file sink: each write is one pwrite at its offset, run off this thread one after another (it
 * overlaps with reading and parsing; concurrent pwrites to one file contend in the kernel: 2 GiB of
 * incompressible data took 2.05 s with 8 at once, 1.29 s one at a time). Holes stay unwritten, the
 * size is set by truncation. A failed write surfaces at the next call.
 */
function fileSink(fd: number): ImageSink & { drain(): Promise<void> } {
  /** Settles (never rejects) once every write queued so far has run. */
  let tail: Promise<void> = Promise.resolve();
  const queued: Promise<void>[] = [];
  let failure: unknown;
  return {
    async write(offset, bytes) {
      if (failure !== undefined) throw failure;
      if (queued.length >= MAX_QUEUED_WRITES) await queued[0];
      const done = tail
        .then(() => {
          if (failure === undefined) {
            return pwriteOffThread(fd, bytes as Uint8Array<ArrayBuffer>, offset);
          }
        })
        .catch((e) => void (failure ??= e))
        .finally(() => void queued.shift());
      tail = done;
      queued.push(done);
    },
    afterWrites(fn) {
      void tail.then(fn);
    },
    async resize(size) {
      await tail;
      if (failure !== undefined) throw failure;
      truncateFd(fd, size);
    },
    /** Waits for every queued write, failed or not (the fd must outlive them). */
    async drain() {
      await tail;
    },
  };
}

/** A stream sink: holes become zeros, in order. */
function streamSink(writer: WritableStreamDefaultWriter<Uint8Array>): ImageSink {
  const zeros = new Uint8Array(1 << 20);
  let position = 0;
  const fillTo = async (target: number) => {
    while (position < target) {
      const n = Math.min(zeros.length, target - position);
      await writer.write(zeros.subarray(0, n));
      position += n;
    }
  };
  return {
    async write(offset, bytes) {
      await fillTo(offset);
      // A copy (new Uint8Array, not .slice(), which is a view on a node Buffer): the writer may
      // hold the chunk after this returns, and the decoder frees its buffers (see detach).
      await writer.write(new Uint8Array(bytes));
      position += bytes.length;
    },
    afterWrites: (fn) => fn(),
    async resize(size, final) {
      if (final) await fillTo(size);
    },
  };
}

/**
 * Decodes `input` into the file `destination`: built as a temporary file next to it (mode 0600),
 * renamed into place once complete and valid; on failure nothing is left behind.
 */
export function unpackToFile(
  input: ReadableStream<Uint8Array>,
  destination: string,
  options: UnpackOptions = {},
): Promise<UnpackStats> {
  return decodeToFile(streamInput(input), destination, options);
}

/**
 * {@link unpackToFile} with the input read from the file `source` (one reused read buffer instead
 * of a stream's fresh chunks).
 */
export async function unpackFileToFile(
  source: string,
  destination: string,
  options: UnpackOptions = {},
): Promise<UnpackStats> {
  return decodeToFile(fileInput(await Deno.open(source)), destination, options);
}

function decodeToFile(
  input: ChunkInput,
  destination: string,
  options: UnpackOptions,
): Promise<UnpackStats> {
  return writeViaTemp(destination, 0o600, async (fd) => {
    const sink = fileSink(fd);
    try {
      return await decodeInto(input, sink, options, true);
    } finally {
      await sink.drain();
    }
  }).finally(() => input.close());
}

/**
 * Decodes `input` onto a byte stream, holes as zeros (closed at the end, aborted on failure).
 * The consumer sees bytes before validation completes: a failure aborts the stream.
 */
export async function unpackToStream(
  input: ReadableStream<Uint8Array>,
  out: WritableStream<Uint8Array>,
  options: UnpackOptions = {},
): Promise<UnpackStats> {
  const writer = out.getWriter();
  try {
    const stats = await decodeInto(streamInput(input), streamSink(writer), options, false);
    await writer.close();
    return stats;
  } catch (e) {
    await writer.abort(e).catch(() => {});
    throw e;
  }
}
