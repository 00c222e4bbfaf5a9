/**
 * `push DIR URI` / `pull URI DIR`: ship a checkpoint directory to an object store and back
 * (see transfer.ts for what is verified).
 *
 * @module
 */
import { type Command, expectPositionals, parseFlags } from "../cli/command.ts";
import { progress } from "../cli/progress.ts";
import { pullSnapshot, pushSnapshot, type TransferProgress } from "./transfer.ts";

const STORE_HELP = `URI is file:///DIR/ or s3://BUCKET/PREFIX/ (S3 settings from AWS_ENDPOINT_URL,
AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_S3_FORCE_PATH_STYLE or
?path-style=true; see docs/stores.md, also for gs://).`;

/** A progress callback drawing one bar per file. */
function fileProgress(enabled: boolean, verb: string) {
  let current = "";
  let bar = progress(verb, false);
  let last = 0;
  return {
    update({ file, bytes }: TransferProgress) {
      if (file !== current) {
        if (current) bar.done(last);
        current = file;
        bar = progress(`${verb} ${file}`, enabled);
      }
      last = bytes;
      bar.update(bytes);
    },
    end() {
      if (current) bar.done(last);
    },
  };
}

export const pushCommand: Command = {
  name: "push",
  summary: "upload a checkpoint directory to an object store",
  help: `Usage: ateom-microvm push [--progress] DIR URI

Uploads the regular files of the checkpoint directory DIR to URI: memory-ranges packed as
memory-ranges.ates (sparse-extent zstd), the other files as they are, then manifest.json.

${STORE_HELP}

Options:
  --progress    show bytes and rate on stderr`,
  async run(args) {
    const { values, positionals, help } = parseFlags(args, { progress: { type: "boolean" } });
    if (help) {
      console.log(this.help);
      return 0;
    }
    const [dir, uri] = expectPositionals(positionals, ["dir", "uri"]);
    const bar = fileProgress(!!values.progress, "push");
    const manifest = await pushSnapshot(dir, uri, { onProgress: bar.update });
    bar.end();
    console.error(`push: ${manifest.files.length} files to ${uri}`);
    return 0;
  },
};

export const pullCommand: Command = {
  name: "pull",
  summary: "download and verify a checkpoint directory from an object store",
  help: `Usage: ateom-microvm pull [--progress] URI DIR

Downloads the snapshot at URI into DIR (which must not exist or be empty), checking every file
against manifest.json; DIR appears only when all files matched.

${STORE_HELP}

Options:
  --progress    show bytes and rate on stderr`,
  async run(args) {
    const { values, positionals, help } = parseFlags(args, { progress: { type: "boolean" } });
    if (help) {
      console.log(this.help);
      return 0;
    }
    const [uri, dir] = expectPositionals(positionals, ["uri", "dir"]);
    const bar = fileProgress(!!values.progress, "pull");
    const manifest = await pullSnapshot(uri, dir, { onProgress: bar.update });
    bar.end();
    console.error(`pull: ${manifest.files.length} files into ${dir}`);
    return 0;
  },
};
