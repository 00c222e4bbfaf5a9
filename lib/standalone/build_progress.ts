/**
 * The rootfs build's progress during `run` and `restore`. The build runs in the actor's worker,
 * which logs it (lib/lifecycle/build_log.ts) to `worker.log`; while the Run/Restore call is in
 * flight the CLI follows that file from its end and draws those lines with lib/cli/progress.ts: a
 * bar redrawn in place on a terminal, plain lines otherwise (stderr, as pull and push do).
 *
 * Following copes with a file not created yet, partial lines (kept until their newline) and a
 * file replaced or truncated under it (a restarted worker): it then reads the new file from its
 * start. Unreadable or unrelated lines are skipped; the follower never fails the call.
 *
 * @module
 */
import { type Progress, progress, type ProgressOptions } from "../cli/progress.ts";
import { ROOTFS_PROGRESS_MSG, ROOTFS_READY_MSG } from "../lifecycle/build_log.ts";
import type { BuildProgress } from "../rootfs/build.ts";
import { progressLine } from "../rootfs/command.ts";

/** One rootfs build line of the worker's log: a step of a container's build, or its end. */
export type BuildEvent =
  | { container: string; progress: BuildProgress }
  | { container: string; ready: string };

const PHASES = new Set(["scan", "mkfs", "fixup", "verify"]);

/** The {@link BuildEvent} a worker log line carries; undefined for any other line. */
export function parseBuildLine(line: string): BuildEvent | undefined {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!record || typeof record !== "object" || typeof record.container !== "string") {
    return undefined;
  }
  const { msg, container } = record;
  if (msg === ROOTFS_READY_MSG) {
    return { container, ready: typeof record.outcome === "string" ? record.outcome : "done" };
  }
  const { phase, done, total } = record;
  if (
    msg !== ROOTFS_PROGRESS_MSG || typeof phase !== "string" || !PHASES.has(phase) ||
    !Number.isFinite(done) || !Number.isFinite(total)
  ) {
    return undefined;
  }
  return {
    container,
    progress: {
      phase: phase as BuildProgress["phase"],
      done: done as number,
      total: total as number,
    },
  };
}

/** Draws {@link BuildEvent}s; `end` finishes what is still drawn. */
export interface BuildProgressView {
  show(event: BuildEvent): void;
  end(): void;
}

/**
 * A view writing to `options.out` (default stderr): the mkfs phase as a lib/cli/progress.ts bar
 * labelled `rootfs CONTAINER: writing`, the other phases as one status line each
 * (`rootfs CONTAINER: scanning source (N entries)`), the end as `rootfs CONTAINER: ready (OUTCOME)`.
 */
export function buildProgressView(options: ProgressOptions = {}): BuildProgressView {
  const out = options.out ?? Deno.stderr;
  const terminal = out.isTerminal();
  const encoder = new TextEncoder();
  const write = (text: string) => out.writeSync(encoder.encode(text));
  let bar: { progress: Progress; container: string; done: number } | undefined;
  let status = "";
  let lineOpen = false; // a terminal line without its newline yet
  const closeBar = () => {
    if (!bar) return;
    bar.progress.done(bar.done);
    bar = undefined;
    lineOpen = false;
  };
  const line = (text: string, final: boolean) => {
    if (text === status && !final) return;
    status = text;
    write(terminal ? `\r${text}\x1b[K${final ? "\n" : ""}` : `${text}\n`);
    lineOpen = terminal && !final;
  };
  return {
    show(event) {
      const prefix = `rootfs ${event.container}`;
      if ("ready" in event) {
        closeBar();
        line(`${prefix}: ready (${event.ready})`, true);
        return;
      }
      const p = event.progress;
      if (p.phase !== "mkfs") {
        closeBar();
        line(progressLine(p, prefix), false);
        return;
      }
      if (bar?.container !== event.container) {
        closeBar();
        bar = {
          progress: progress(`${prefix}: writing`, true, { ...options, out }),
          container: event.container,
          done: 0,
        };
        status = "";
      }
      bar.done = p.done;
      bar.progress.update(p.done, p.total > 0 ? p.total : undefined);
      lineOpen = terminal;
    },
    end() {
      closeBar();
      if (lineOpen) write("\n");
      lineOpen = false;
    },
  };
}

/**
 * Reads the complete lines appended to a log file since the last call, starting at the end the
 * file had when {@link LogTail.atEnd} was called.
 */
export class LogTail {
  #path: string;
  #ino: number | null;
  #offset: number;
  #pending = "";
  #decoder = new TextDecoder();

  private constructor(path: string, ino: number | null, offset: number) {
    this.#path = path;
    this.#ino = ino;
    this.#offset = offset;
  }

  /** A tail of `path` past what it holds now (an absent file: from the start of the one to come). */
  static async atEnd(path: string): Promise<LogTail> {
    const stat = await Deno.stat(path).catch(() => undefined);
    return new LogTail(path, stat?.ino ?? null, stat?.size ?? 0);
  }

  /** The complete lines written since the last call (none while the file is absent). */
  async lines(): Promise<string[]> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.#path);
    } catch {
      return [];
    }
    try {
      const stat = await file.stat();
      if (stat.ino !== this.#ino || stat.size < this.#offset) {
        // Another file (or the same one cut short): its lines are all new.
        this.#ino = stat.ino;
        this.#offset = 0;
        this.#pending = "";
        this.#decoder = new TextDecoder();
      }
      await file.seek(this.#offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(64 * 1024);
      let text = "";
      for (let n = await file.read(buf); n !== null; n = await file.read(buf)) {
        this.#offset += n;
        text += this.#decoder.decode(buf.subarray(0, n), { stream: true });
      }
      const lines = (this.#pending + text).split("\n");
      this.#pending = lines.pop()!;
      return lines.filter((l) => l !== "");
    } finally {
      file.close();
    }
  }
}

/** Options of {@link followBuildProgress}. */
export interface FollowOptions extends ProgressOptions {
  /** ms between two reads of the log file (default 100). */
  pollMs?: number;
}

/**
 * Runs `call` (a Run or Restore RPC) while drawing the rootfs build lines that `logFile` gains
 * meanwhile; after `call` settles, reads the file once more, finishes the drawing, and returns
 * (or throws) what `call` did.
 */
export async function followBuildProgress<T>(
  logFile: string,
  call: () => Promise<T>,
  options: FollowOptions = {},
): Promise<T> {
  const tail = await LogTail.atEnd(logFile);
  const view = buildProgressView(options);
  const pump = async () => {
    for (const line of await tail.lines().catch(() => [])) {
      const event = parseBuildLine(line);
      if (event) view.show(event);
    }
  };
  let settled = false;
  let wake = () => {};
  const following = (async () => {
    while (!settled) {
      await pump();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (settled) resolve();
        timer = setTimeout(resolve, options.pollMs ?? 100);
      });
      clearTimeout(timer);
    }
    await pump();
    view.end();
  })();
  try {
    return await call();
  } finally {
    settled = true;
    wake();
    await following;
  }
}
