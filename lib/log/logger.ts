/**
 * The worker's structured logger: JSON lines on stdout in Go slog's JSON shape
 * (`time`, `level`, `msg`, then attributes), written through one synchronised line writer so
 * lines from concurrent tasks never interleave.
 *
 * Every subsystem takes a {@link Logger}; tests pass {@link captureLogger} to assert on lines.
 *
 * @module
 */

export type Level = "DEBUG" | "INFO" | "WARN" | "ERROR";
export type Attrs = Record<string, unknown>;

/** A structured logger. `with` returns a child that adds `attrs` to every line. */
export interface Logger {
  debug(msg: string, attrs?: Attrs): void;
  info(msg: string, attrs?: Attrs): void;
  warn(msg: string, attrs?: Attrs): void;
  error(msg: string, attrs?: Attrs): void;
  with(attrs: Attrs): Logger;
}

const LEVEL_ORDER: Record<Level, number> = { DEBUG: 0, INFO: 1, WARN: 2, ERROR: 3 };

/**
 * Parses a `--log-level` value (`debug`, `info`, `warn`/`warning`, `error`, any case).
 *
 * @example
 * ```ts
 * parseLevel("warn"); // "WARN"
 * ```
 */
export function parseLevel(text: string): Level {
  const upper = text.trim().toUpperCase();
  const level = upper === "WARNING" ? "WARN" : upper;
  if (level in LEVEL_ORDER) return level as Level;
  throw new Error(
    `invalid log level ${JSON.stringify(text)}: use one of debug, info, warn, error`,
  );
}

/**
 * Formats `date` like Go's `time.RFC3339Nano` in UTC: fractional seconds with trailing zeros
 * dropped (`2026-05-16T01:03:37.12Z`, `2026-05-16T01:03:37Z`).
 */
export function formatTime(date: Date): string {
  return date.toISOString().replace(/\.?0+Z$/, "Z");
}

/** Writes whole lines to a sink; one call writes one or more complete lines atomically. */
export type LineSink = (text: string) => void;

const encoder = new TextEncoder();

/**
 * A sink writing synchronously to stdout, so concurrent writers cannot interleave within a line.
 * The worker's logger and its actor-log writer (lib/log/actorlog.ts) share it.
 */
export const stdoutSink: LineSink = (text) => {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
};

function errorValue(v: unknown): unknown {
  return v instanceof Error ? v.message : v;
}

/** A JSON logger writing to `sink` at `minLevel` and above. */
export function jsonLogger(
  sink: LineSink = stdoutSink,
  minLevel: Level = "INFO",
  base: Attrs = {},
  now: () => Date = () => new Date(),
): Logger {
  const emit = (level: Level, msg: string, attrs?: Attrs) => {
    if (LEVEL_ORDER[level] < LEVEL_ORDER[minLevel]) return;
    const record: Attrs = { time: formatTime(now()), level, msg };
    for (const [k, v] of Object.entries({ ...base, ...attrs })) record[k] = errorValue(v);
    sink(JSON.stringify(record) + "\n");
  };
  return {
    debug: (m, a) => emit("DEBUG", m, a),
    info: (m, a) => emit("INFO", m, a),
    warn: (m, a) => emit("WARN", m, a),
    error: (m, a) => emit("ERROR", m, a),
    with: (attrs) => jsonLogger(sink, minLevel, { ...base, ...attrs }, now),
  };
}

/** A logger that keeps parsed records in memory, for tests. */
export function captureLogger(minLevel: Level = "DEBUG"): Logger & { records: Attrs[] } {
  const records: Attrs[] = [];
  const logger = jsonLogger((text) => {
    for (const line of text.split("\n")) if (line) records.push(JSON.parse(line));
  }, minLevel);
  return Object.assign(logger, { records });
}

/** A logger that drops everything. */
export const nullLogger: Logger = jsonLogger(() => {}, "ERROR");
