/**
 * Progress reporting for long transfers. On a terminal: one line redrawn in place with `\r`
 * (bytes, rate, percentage when the total is known), finished with a newline. Elsewhere: a plain
 * line at most every `interval` ms, so logs stay short.
 *
 * @module
 */

/** Writes progress for one transfer. `update` is cheap to call often; `done` prints the summary. */
export interface Progress {
  update(bytes: number, total?: number): void;
  done(bytes: number): void;
}

export interface ProgressOptions {
  /** Where to write; default stderr. */
  out?: { writeSync(p: Uint8Array): number; isTerminal(): boolean };
  /** Minimum ms between two redraws (terminal) or lines (not a terminal). */
  interval?: number;
  /** The clock, for tests. */
  now?: () => number;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** `1536` → `"1.5 KiB"`. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** One progress line: `label 12.0 MiB / 100.0 MiB (12%) 40.0 MiB/s`. */
export function formatProgress(label: string, bytes: number, seconds: number, total?: number) {
  const rate = seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : "-";
  const of = total ? ` / ${formatBytes(total)} (${Math.floor((100 * bytes) / total)}%)` : "";
  return `${label} ${formatBytes(bytes)}${of} ${rate}`;
}

/** A progress reporter; a no-op when `enabled` is false. */
export function progress(label: string, enabled: boolean, options: ProgressOptions = {}): Progress {
  if (!enabled) return { update() {}, done() {} };
  const out = options.out ?? Deno.stderr;
  const now = options.now ?? (() => performance.now());
  const terminal = out.isTerminal();
  const interval = options.interval ?? (terminal ? 100 : 5000);
  const start = now();
  let last = -Infinity;
  let total: number | undefined;
  const encoder = new TextEncoder();
  const write = (line: string) => out.writeSync(encoder.encode(line));
  return {
    update(bytes, knownTotal) {
      total = knownTotal ?? total;
      const t = now();
      if (t - last < interval) return;
      last = t;
      const line = formatProgress(label, bytes, (t - start) / 1000, total);
      write(terminal ? `\r${line}\x1b[K` : `${line}\n`);
    },
    done(bytes) {
      const line = formatProgress(label, bytes, (now() - start) / 1000, total) + " done";
      write(terminal ? `\r${line}\x1b[K\n` : `${line}\n`);
    },
  };
}

/** A {@link fileProgress} reporter: `update` takes the file being transferred and its bytes so far. */
export interface FileProgress {
  update(step: { file: string; bytes: number }): void;
  end(): void;
}

/**
 * Progress of a transfer of several files (push, pull): one bar per file, labelled
 * `verb file`, finished when the next file starts or at `end`. A no-op when `enabled` is false.
 */
export function fileProgress(
  verb: string,
  enabled: boolean,
  options: ProgressOptions = {},
): FileProgress {
  let current = "";
  let bar = progress(verb, false);
  let last = 0;
  return {
    update({ file, bytes }) {
      if (file !== current) {
        if (current) bar.done(last);
        current = file;
        bar = progress(`${verb} ${file}`, enabled, options);
      }
      last = bytes;
      bar.update(bytes);
    },
    end() {
      if (current) bar.done(last);
    },
  };
}
