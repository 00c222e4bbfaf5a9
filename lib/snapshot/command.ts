/**
 * `pack SRC DST` / `unpack SRC DST`: the codec on the command line. `-` is stdin/stdout. Packing a
 * file writes the sparse-extent format; packing stdin writes plain zstd (its size is not known up
 * front), which unpack reads as well.
 *
 * @module
 */
import { partialPath } from "./files.ts";
import { type Command, expectPositionals, parseFlags, UsageError } from "../cli/command.ts";
import { formatBytes, progress } from "../cli/progress.ts";
import { packSparseFile, packSparseFileToFile, packStream } from "./encode.ts";
import { unpackFileToFile, unpackToFile, unpackToStream } from "./decode.ts";

/** A file's bytes in 8 MiB reads (the default readable reads 64 KiB at a time). */
export function readFileStream(file: Deno.FsFile, chunkSize = 1 << 20): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async pull(controller) {
      const buffer = new Uint8Array(chunkSize);
      const n = await file.read(buffer);
      if (n === null) {
        file.close();
        controller.close();
      } else controller.enqueue(buffer.subarray(0, n));
    },
    cancel() {
      file.close();
    },
  });
}

function workerCount(flag: string | undefined): number | undefined {
  if (flag === undefined) return undefined;
  const n = Number(flag);
  if (!Number.isInteger(n) || n < 0 || n > 256) {
    throw new UsageError(`--workers must be a whole number from 0 to 256, got ${flag}`);
  }
  return n;
}

/**
 * Where pack writes: stdout, or a temporary file beside `path` that `commit` renames into place
 * (a failed pack leaves nothing behind; `abandon` removes it).
 */
async function packOutput(path: string) {
  if (path === "-") {
    return { stream: Deno.stdout.writable, commit: async () => {}, abandon: async () => {} };
  }
  const temp = partialPath(path);
  const file = await Deno.open(temp, { write: true, createNew: true });
  return {
    stream: file.writable,
    commit: () => Deno.rename(temp, path),
    abandon: () => Deno.remove(temp).catch(() => {}),
  };
}

/** The arguments pack and unpack share: `[--progress] [--workers N] SRC DST`. */
interface CodecArgs {
  src: string;
  dst: string;
  workers?: number;
  progress: boolean;
  bar: ReturnType<typeof progress>;
}

/** Parses `args` for `command`. */
function codecArgs(command: Command, args: string[]): CodecArgs {
  const { values, positionals } = parseFlags(args, {
    progress: { type: "boolean" },
    workers: { type: "string" },
  });
  const [src, dst] = expectPositionals(positionals, ["src", "dst"]);
  const workers = workerCount(values.workers);
  const bar = progress(command.name, !!values.progress);
  return { src, dst, workers, progress: !!values.progress, bar };
}

export const packCommand: Command = {
  name: "pack",
  summary: "compress a sparse image (only its populated extents) into a snapshot stream",
  help: `Usage: ateom-microvm pack [--progress] [--workers N] SRC DST

Compresses SRC into the sparse-extent zstd format (v2): only the populated extents are read.
SRC or DST may be '-' for stdin/stdout; from stdin the output is plain zstd.

Options:
  --progress    show bytes and rate on stderr
  --workers N   compression threads (default: one per core)`,
  async run(args) {
    const parsed = codecArgs(this, args);
    const { src, dst, workers, bar } = parsed;
    const onProgress = (s: { dataBytes: number }) => bar.update(s.dataBytes);
    let stats;
    if (src !== "-" && dst !== "-") {
      // File to file: frames go straight from the compression buffers to the file.
      stats = await packSparseFileToFile(src, dst, { workers, onProgress });
    } else {
      const out = await packOutput(dst);
      try {
        stats = src === "-"
          ? await packStream(Deno.stdin.readable, out.stream, { workers, onProgress })
          : await packSparseFile(src, out.stream, { workers, onProgress });
        await out.commit();
      } catch (e) {
        await out.abandon();
        throw e;
      }
    }
    bar.done(stats.dataBytes);
    if (parsed.progress) {
      console.error(
        `pack: ${formatBytes(stats.logicalSize)} image, ${
          formatBytes(stats.dataBytes)
        } populated, ` +
          `${formatBytes(stats.compressedBytes)} written`,
      );
    }
    return 0;
  },
};

export const unpackCommand: Command = {
  name: "unpack",
  summary: "decode a snapshot stream (sparse-extent or plain zstd) into a sparse file",
  help: `Usage: ateom-microvm unpack [--progress] [--workers N] SRC DST

Decodes SRC (sparse-extent zstd v2, or plain zstd) into DST. DST is written as a sparse file under
a temporary name and renamed into place only when the whole input is valid. SRC or DST may be '-'
for stdin/stdout; on stdout the holes are written as zeros.

Options:
  --progress    show bytes and rate on stderr
  --workers N   decompression threads (default: one per core; 0 decodes on the main thread)`,
  async run(args) {
    const parsed = codecArgs(this, args);
    const { src, dst, workers, bar } = parsed;
    const onProgress = (s: { compressedBytes: number }) => bar.update(s.compressedBytes);
    let stats;
    if (src !== "-" && dst !== "-") {
      stats = await unpackFileToFile(src, dst, { onProgress, workers });
    } else {
      const input = src === "-" ? Deno.stdin.readable : readFileStream(await Deno.open(src));
      stats = dst === "-"
        ? await unpackToStream(input, Deno.stdout.writable, { onProgress, workers })
        : await unpackToFile(input, dst, { onProgress, workers });
    }
    bar.done(stats.compressedBytes);
    if (parsed.progress) {
      console.error(
        `unpack: ${formatBytes(stats.logicalSize)} image, ${
          formatBytes(stats.writtenBytes)
        } written`,
      );
    }
    return 0;
  },
};
