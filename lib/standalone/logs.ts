/**
 * `logs NAME [-f]`: the actor's log lines from its supervisor's log file: container output and
 * lifecycle events ("Actor started", ...), i.e. the lines carrying the `ate.dev/actor_id` label.
 * Text output is the line's `message` (a JSON line from the container without one is printed
 * without its labels); `--json` prints the records as written; `--all` adds the worker's own log.
 *
 * @module
 */
import { type Command, parseFlags } from "../cli/command.ts";
import { GCE_LABELS_KEY, LABELS_KEY } from "../log/actorlog.ts";
import { loadContext, mustRead, supervisorAlive } from "./actor.ts";
import { nameArgument } from "./output.ts";

/** How one worker.log line is shown; undefined when it is not shown. */
export function renderLogLine(
  line: string,
  options: { json?: boolean; all?: boolean },
): string | undefined {
  if (line.trim() === "") return undefined;
  let record: Record<string, unknown> | undefined;
  try {
    const parsed = JSON.parse(line);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) record = parsed;
  } catch { /* not JSON: a worker crash message */ }
  const labelsKey = record && (LABELS_KEY in record ? LABELS_KEY : GCE_LABELS_KEY);
  const labels = record && labelsKey ? record[labelsKey] as Record<string, unknown> : undefined;
  const isActor = !!labels && typeof labels === "object" && "ate.dev/actor_id" in labels;
  if (!isActor) return options.all ? line : undefined;
  if (options.json) return line;
  if (typeof record!.message === "string") return record!.message;
  const { [labelsKey!]: _labels, time: _time, ...rest } = record!;
  return JSON.stringify(rest);
}

export const logsCommand: Command = {
  name: "logs",
  summary: "print an actor's log (standalone)",
  help: `Usage: ateom-microvm logs [-f] [--json] [--all] NAME

Prints the output of actor NAME's container and its lifecycle events, oldest first.

Options:
  -f, --follow   keep printing new lines until the actor's supervisor exits (or Ctrl-C)
  --json         print the JSON records (with time and labels) as the worker wrote them
  --all          also print the worker's own log lines`,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
      follow: { type: "boolean", short: "f" },
      json: { type: "boolean" },
      all: { type: "boolean" },
    });
    const name = nameArgument(positionals);
    const ctx = await loadContext();
    await mustRead(ctx, name);
    const path = ctx.state.logFile(name);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path);
    } catch {
      return 0; // never started: no lines
    }
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    const buf = new Uint8Array(64 * 1024);
    let pending = "";
    const emit = (text: string) => {
      pending += text;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      const out = lines.map((l) => renderLogLine(l, values)).filter((l) => l !== undefined);
      if (out.length) Deno.stdout.writeSync(encoder.encode(out.join("\n") + "\n"));
    };
    let following = !!values.follow;
    try {
      while (true) {
        const n = await file.read(buf);
        if (n !== null) {
          emit(decoder.decode(buf.subarray(0, n), { stream: true }));
          continue;
        }
        if (!following) break;
        const current = await ctx.state.read(name);
        // Once the supervisor is gone, one more pass reads what it wrote last.
        if (!current || !(await supervisorAlive(current))) following = false;
        else await new Promise((r) => setTimeout(r, 200));
      }
      emit("\n");
    } finally {
      file.close();
    }
    return 0;
  },
};
