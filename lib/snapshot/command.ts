/**
 * `pack SRC DST` / `unpack SRC DST`: the codec on the command line. `-` is stdin/stdout. Packing a
 * file writes the sparse-extent format; packing stdin writes plain zstd (its size is not known up
 * front), which unpack reads as well.
 *
 * @module
 */
import { type Command, expectPositionals, parseFlags, UsageError } from "../cli/command.ts";
import { formatBytes, progress } from "../cli/progress.ts";
import { packSparseFile, packStream } from "./encode.ts";
import { unpackToFile, unpackToStream } from "./decode.ts";

async function outputStream(path: string): Promise<WritableStream<Uint8Array>> {
  if (path === "-") return Deno.stdout.writable;
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  return file.writable;
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
    const { values, positionals, help } = parseFlags(args, {
      progress: { type: "boolean" },
      workers: { type: "string" },
    });
    if (help) {
      console.log(this.help);
      return 0;
    }
    const [src, dst] = expectPositionals(positionals, ["src", "dst"]);
    const workers = values.workers === undefined ? undefined : Number(values.workers);
    if (workers !== undefined && !(Number.isInteger(workers) && workers >= 0)) {
      throw new UsageError(`--workers must be a whole number, got ${values.workers}`);
    }
    const bar = progress("pack", !!values.progress);
    const onProgress = (s: { dataBytes: number }) => bar.update(s.dataBytes);
    const out = await outputStream(dst);
    const stats = src === "-"
      ? await packStream(Deno.stdin.readable, out, { workers, onProgress })
      : await packSparseFile(src, out, { workers, onProgress });
    bar.done(stats.dataBytes);
    if (values.progress) {
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
  help: `Usage: ateom-microvm unpack [--progress] SRC DST

Decodes SRC (sparse-extent zstd v2, or plain zstd) into DST. DST is written as a sparse file under
a temporary name and renamed into place only when the whole input is valid. SRC or DST may be '-'
for stdin/stdout; on stdout the holes are written as zeros.

Options:
  --progress    show bytes and rate on stderr`,
  async run(args) {
    const { values, positionals, help } = parseFlags(args, { progress: { type: "boolean" } });
    if (help) {
      console.log(this.help);
      return 0;
    }
    const [src, dst] = expectPositionals(positionals, ["src", "dst"]);
    const bar = progress("unpack", !!values.progress);
    const input = src === "-" ? Deno.stdin.readable : (await Deno.open(src)).readable;
    const onProgress = (s: { compressedBytes: number }) => bar.update(s.compressedBytes);
    const stats = dst === "-"
      ? await unpackToStream(input, Deno.stdout.writable, { onProgress })
      : await unpackToFile(input, dst, { onProgress });
    bar.done(stats.compressedBytes);
    if (values.progress) {
      console.error(
        `unpack: ${formatBytes(stats.logicalSize)} image, ${
          formatBytes(stats.writtenBytes)
        } written`,
      );
    }
    return 0;
  },
};
