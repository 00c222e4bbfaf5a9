/**
 * `push DIR URI` / `pull URI DIR`: ship a checkpoint directory to an object store and back
 * (see transfer.ts for what is verified).
 *
 * @module
 */
import { type Command, expectPositionals, parseFlags } from "../cli/command.ts";
import { fileProgress } from "../cli/progress.ts";
import { pullSnapshot, pushSnapshot } from "./transfer.ts";

const STORE_HELP = `URI is file:///DIR/ or s3://BUCKET/PREFIX/ (S3 settings from AWS_ENDPOINT_URL,
AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_S3_FORCE_PATH_STYLE or
?path-style=true; see docs/stores.md, also for gs://).`;

/**
 * A transfer command: `--progress` and two positionals (`from`, `to`) handed to `transfer`, then
 * one summary line on stderr (`push: 2 files to URI`).
 */
function transferCommand(spec: {
  name: "push" | "pull";
  summary: string;
  help: string;
  positionals: [from: string, to: string];
  transfer: typeof pushSnapshot;
  /** How the summary joins the file count to `to`: "to" an object store, "into" a directory. */
  into: "to" | "into";
}): Command {
  return {
    name: spec.name,
    summary: spec.summary,
    help: spec.help,
    async run(args) {
      const { values, positionals } = parseFlags(args, { progress: { type: "boolean" } });
      const [from, to] = expectPositionals(positionals, spec.positionals);
      const bar = fileProgress(spec.name, !!values.progress);
      const manifest = await spec.transfer(from, to, { onProgress: bar.update });
      bar.end();
      console.error(`${spec.name}: ${manifest.files.length} files ${spec.into} ${to}`);
      return 0;
    },
  };
}

export const pushCommand: Command = transferCommand({
  name: "push",
  summary: "upload a checkpoint directory to an object store",
  help: `Usage: ateom-microvm push [--progress] DIR URI

Uploads the regular files of the checkpoint directory DIR to URI: memory-ranges packed as
memory-ranges.ates (sparse-extent zstd), the other files as they are, then manifest.json.

${STORE_HELP}

Options:
  --progress    show bytes and rate on stderr`,
  positionals: ["dir", "uri"],
  transfer: pushSnapshot,
  into: "to",
});

export const pullCommand: Command = transferCommand({
  name: "pull",
  summary: "download and verify a checkpoint directory from an object store",
  help: `Usage: ateom-microvm pull [--progress] URI DIR

Downloads the snapshot at URI into DIR (which must not exist or be empty), checking every file
against manifest.json; DIR appears only when all files matched.

${STORE_HELP}

Options:
  --progress    show bytes and rate on stderr`,
  positionals: ["uri", "dir"],
  transfer: pullSnapshot,
  into: "into",
});
