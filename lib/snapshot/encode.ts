/**
 * Streaming encoders: a sparse file into the sparse-extent format (only populated extents are read
 * and compressed), or any byte stream into plain zstd. The plaintext is cut into fixed-size chunks,
 * each compressed into an independent zstd frame on a worker pool while the next chunks are read;
 * frames are written in order. Memory: at most 2 × workers chunks in flight.
 *
 * @module
 */
import { closeFd, O_RDONLY, openFd } from "../ffi/libc.ts";
import { sizeOf } from "../ffi/seek.ts";
import { type Extent, extentsOfFd } from "../sparse/extents.ts";
import {
  CompressPool,
  type CompressResult,
  defaultWorkers,
  type ZstdBackend,
} from "./compress_pool.ts";
import { writeViaTemp } from "./files.ts";
import { pwriteFull } from "../ffi/pio.ts";
import { encodeHeader, encodeI64, END_OFFSET } from "./format.ts";

/** Plaintext bytes per zstd frame. */
export const DEFAULT_CHUNK_SIZE = 4 << 20;

/** Counters passed to `onProgress` and returned at the end. */
export interface PackStats {
  /** Logical size of the image (holes included). */
  logicalSize: number;
  /** Populated bytes read so far. */
  dataBytes: number;
  /** Bytes written to the output so far. */
  compressedBytes: number;
}

export interface PackOptions {
  /** Compression threads; default every core; 0 compresses on the calling thread. */
  workers?: number;
  /** zstd implementation: libzstd when present (default), or node:zlib workers. */
  zstd?: ZstdBackend;
  /** Plaintext bytes per frame (default 4 MiB). */
  chunkSize?: number;
  /** Called after each frame is written. */
  onProgress?: (stats: PackStats) => void;
  /** Fed the logical content in order (holes as zeros), e.g. a node:crypto Hash. */
  digest?: Digest;
}

/** A running hash of logical content. */
export interface Digest {
  update(bytes: Uint8Array): unknown;
}

const ZEROS = new Uint8Array(1 << 20);

/** Feeds `length` zero bytes to `digest`. */
export function digestZeros(digest: Digest, length: number): void {
  for (let left = length; left > 0; left -= ZEROS.length) {
    digest.update(left >= ZEROS.length ? ZEROS : ZEROS.subarray(0, left));
  }
}

/** Where packed bytes go. */
interface ByteSink {
  /**
   * True when the sink may still hold `bytes` after `write` settles (a stream): it then gets a
   * copy, and the frame's memory is reused at once. A file sink is done with them.
   */
  readonly keeps: boolean;
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(reason: unknown): Promise<void>;
}

function streamSink(out: WritableStream<Uint8Array>): ByteSink {
  const writer = out.getWriter();
  return {
    keeps: true,
    write: (bytes) => writer.write(bytes),
    close: () => writer.close(),
    abort: (reason) => writer.abort(reason).catch(() => {}),
  };
}

/** Appends to the file open at `fd` with pwrite (the caller closes it). */
function fileSink(fd: number): ByteSink {
  let offset = 0;
  return {
    keeps: false,
    write(bytes) {
      pwriteFull(fd, bytes as Uint8Array<ArrayBuffer>, offset);
      offset += bytes.length;
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
    abort: () => Promise.resolve(),
  };
}

/** Orders compressed frames out of the pool and into the sink, recycling chunk buffers. */
class FramePipeline {
  readonly stats: PackStats = { logicalSize: 0, dataBytes: 0, compressedBytes: 0 };
  #pool: CompressPool;
  #sink: ByteSink;
  #inFlight: Promise<CompressResult>[] = [];
  #free: ArrayBuffer[] = [];
  #buffer: ArrayBuffer;
  #fill = 0;

  constructor(
    readonly chunkSize: number,
    workers: number,
    sink: ByteSink,
    readonly onProgress?: (stats: PackStats) => void,
    backend?: ZstdBackend,
  ) {
    this.#pool = new CompressPool(workers, backend);
    this.#sink = sink;
    this.#buffer = new ArrayBuffer(chunkSize);
  }

  /** Free space in the current chunk, as a view to read into. */
  space(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.#buffer, this.#fill);
  }

  /** Marks `n` bytes of {@link space} as filled; dispatches the chunk when full. */
  async filled(n: number): Promise<void> {
    this.#fill += n;
    if (this.#fill === this.chunkSize) await this.#dispatch();
  }

  /** Copies small plaintext (headers) into the chunk stream. */
  async append(bytes: Uint8Array): Promise<void> {
    let pos = 0;
    while (pos < bytes.length) {
      const space = this.space();
      const n = Math.min(space.length, bytes.length - pos);
      space.set(bytes.subarray(pos, pos + n));
      pos += n;
      await this.filled(n);
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    await this.#sink.write(bytes);
    this.stats.compressedBytes += bytes.length;
  }

  async #dispatch(): Promise<void> {
    if (this.#fill === 0) return;
    this.#inFlight.push(this.#pool.compress(this.#buffer, this.#fill));
    this.#buffer = this.#free.pop() ?? new ArrayBuffer(this.chunkSize);
    this.#fill = 0;
    if (this.#inFlight.length >= 2 * this.#pool.parallelism) await this.#writeOldest();
  }

  async #writeOldest(): Promise<void> {
    const { frame, buffer, release } = await this.#inFlight.shift()!;
    if (buffer.byteLength === this.chunkSize) this.#free.push(buffer);
    if (this.#sink.keeps) {
      const copy = new Uint8Array(frame);
      release();
      await this.write(copy);
    } else {
      await this.write(frame);
      release();
    }
    this.onProgress?.(this.stats);
  }

  /** Compresses the last partial chunk and writes every frame still in flight. */
  async flush(): Promise<void> {
    await this.#dispatch();
    while (this.#inFlight.length) await this.#writeOldest();
  }

  close(): void {
    this.#pool.close();
    // Rejections of abandoned frames are expected once the pool is closed.
    for (const p of this.#inFlight) p.catch(() => {});
    this.#inFlight = [];
  }
}

async function withPipeline(
  sink: ByteSink,
  options: PackOptions,
  body: (pipeline: FramePipeline) => Promise<void>,
): Promise<PackStats> {
  const pipeline = new FramePipeline(
    options.chunkSize ?? DEFAULT_CHUNK_SIZE,
    options.workers ?? defaultWorkers(),
    sink,
    options.onProgress,
    options.zstd,
  );
  try {
    await body(pipeline);
    await pipeline.flush();
    await sink.close();
    return { ...pipeline.stats };
  } catch (e) {
    await sink.abort(e);
    throw e;
  } finally {
    pipeline.close();
  }
}

/**
 * Encodes the sparse file at `path` into the sparse-extent format on `out` (closed at the end,
 * aborted on failure). Only the extents SEEK_DATA/SEEK_HOLE report are read.
 */
export function packSparseFile(
  path: string,
  out: WritableStream<Uint8Array>,
  options: PackOptions = {},
): Promise<PackStats> {
  return packSparse(path, streamSink(out), options);
}

/**
 * Packs the sparse file at `path` into the file `destination`, written under a temporary name
 * beside it and renamed into place when complete (nothing is left behind on failure). Frames are
 * written with pwrite straight from the compression buffers.
 */
export function packSparseFileToFile(
  path: string,
  destination: string,
  options: PackOptions = {},
): Promise<PackStats> {
  return writeViaTemp(destination, 0o644, (fd) => packSparse(path, fileSink(fd), options));
}

function packSparse(path: string, sink: ByteSink, options: PackOptions): Promise<PackStats> {
  return withPipeline(sink, options, async (pipeline) => {
    using file = await Deno.open(path, { read: true });
    const { size, extents } = layoutOf(path);
    pipeline.stats.logicalSize = size;
    await pipeline.write(encodeHeader());
    await pipeline.append(encodeI64(size));
    const digest = options.digest;
    let logical = 0;
    for (const [start, end] of extents) {
      if (digest) digestZeros(digest, start - logical);
      logical = end;
      await pipeline.append(encodeI64(start, end - start));
      await file.seek(start, Deno.SeekMode.Start);
      let left = end - start;
      while (left > 0) {
        const space = pipeline.space();
        const view = left < space.length ? space.subarray(0, left) : space;
        const n = await file.read(view);
        if (n === null) {
          throw new Error(
            `${path} shrank while it was being packed (extent ${start}-${end}); pack a file nobody writes`,
          );
        }
        left -= n;
        digest?.update(view.subarray(0, n));
        pipeline.stats.dataBytes += n;
        await pipeline.filled(n);
      }
    }
    if (digest) digestZeros(digest, size - logical);
    await pipeline.append(encodeI64(Number(END_OFFSET)));
  });
}

/** Encodes a byte stream as plain zstd (no magic) on `out`; used when the size is not known. */
export function packStream(
  input: ReadableStream<Uint8Array>,
  out: WritableStream<Uint8Array>,
  options: PackOptions = {},
): Promise<PackStats> {
  return withPipeline(streamSink(out), options, async (pipeline) => {
    for await (const chunk of input) {
      pipeline.stats.logicalSize += chunk.length;
      pipeline.stats.dataBytes += chunk.length;
      options.digest?.update(chunk);
      await pipeline.append(chunk);
    }
  });
}

function layoutOf(path: string): { size: number; extents: Extent[] } {
  const fd = openFd(path, O_RDONLY);
  try {
    return { size: sizeOf(fd), extents: extentsOfFd(fd) };
  } finally {
    closeFd(fd);
  }
}
