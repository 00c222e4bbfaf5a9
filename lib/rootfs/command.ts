/**
 * `mkfs SRC_DIR OUT_IMAGE`: builds the reproducible ext4 rootfs image of a directory, as the
 * worker does for an actor's bundle. Errors are one line and leave no OUT_IMAGE behind.
 *
 * @module
 */
import { type Command, expectPositionals, parseFlags } from "../cli/command.ts";
import { buildImage, type BuildProgress } from "./build.ts";

const MiB = 1024 * 1024;

/** One progress line for a terminal, after `prefix` (the standalone CLI names the container). */
export function progressLine(p: BuildProgress, prefix = "mkfs"): string {
  if (p.phase === "mkfs" && p.total > 0) {
    const pct = Math.floor((100 * p.done) / p.total);
    return `${prefix}: writing ${(p.done / MiB).toFixed(0)}/${(p.total / MiB).toFixed(0)} MiB ` +
      `(${pct}%)`;
  }
  if (p.phase === "scan") return `${prefix}: scanning source (${p.done} entries)`;
  return `${prefix}: ${p.phase === "fixup" ? "normalising metadata" : "checking the image"}`;
}

export const mkfsCommand: Command = {
  name: "mkfs",
  summary: "build the reproducible ext4 rootfs image of a directory",
  help: `Usage: ateom-microvm mkfs [--resolv-conf FILE] [--verify] SRC_DIR OUT_IMAGE

Builds a raw ext4 image of SRC_DIR at OUT_IMAGE: no journal, sparse, with 512 MiB free for the
actor's writes, and byte-for-byte the same for the same directory contents on any machine.
Skips the build when OUT_IMAGE already holds the image of the same contents.

Options:
  --resolv-conf FILE   write FILE as /etc/resolv.conf into the image (SRC_DIR is not touched)
  --verify             run e2fsck -fn on the image before it is put in place`,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
      "resolv-conf": { type: "string" },
      verify: { type: "boolean" },
    });
    const [src, out] = expectPositionals(positionals, ["src_dir", "out_image"]);
    const tty = Deno.stderr.isTerminal();
    const enc = new TextEncoder();
    let last = "";
    const result = await buildImage(src, out, {
      resolvConf: values["resolv-conf"],
      verify: values.verify ?? false,
      onProgress: tty
        ? (p) => {
          const line = progressLine(p);
          if (line !== last) Deno.stderr.writeSync(enc.encode(`\r\x1b[K${line}`));
          last = line;
        }
        : undefined,
    }).finally(() => {
      if (tty && last) Deno.stderr.writeSync(enc.encode("\r\x1b[K"));
    });
    console.log(
      `${result.image}: ${result.outcome}, ${result.geometry.sizeBytes / MiB} MiB, ` +
        `${result.geometry.inodes} inodes, key ${result.key}`,
    );
    return 0;
  },
};
