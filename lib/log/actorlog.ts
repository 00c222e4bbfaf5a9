/**
 * Actor logs: forwards an actor container's stdout/stderr lines, and synthetic lifecycle events
 * ("Actor started", ...), to the worker's stdout as JSON lines labelled with the actor's
 * identity, exactly as upstream `internal/actorlog` does:
 *
 * - a line that is one JSON object is kept, given `time` when it has none, and gets the
 *   `ate.dev/*` labels merged into its labels object (ours win on collision);
 * - any other line becomes `{"labels":{...},"message":<line>,"time":<now>}`;
 * - a lifecycle event is `{"labels":{actor labels},"message":<event>,"time":<now>}`.
 *
 * The labels key is `labels`, or `logging.googleapis.com/labels` on GCE (where the logging agent
 * turns it into Cloud Logging labels). Output is Go `json.Marshal` shaped (keys sorted). Every
 * record is one call of the shared {@link LineSink}, so lines never interleave with the worker's
 * own log lines written through the same sink.
 *
 * @module
 */
import { encodeGoJson, type GoObject, isGoObject, parseGoJson } from "./gojson.ts";
import { formatTime, type LineSink } from "./logger.ts";

/** The label key when not on GCE. */
export const LABELS_KEY = "labels";
/** The label key on GCE. */
export const GCE_LABELS_KEY = "logging.googleapis.com/labels";

/** Who an actor log line belongs to. */
export interface ActorLabels {
  actorId: string;
  actorTemplateName: string;
  actorTemplateNamespace: string;
}

export interface ActorLogOptions {
  /** Use the GCE labels key (`logging.googleapis.com/labels`). */
  onGce?: boolean;
  /** Clock for `time` (tests). */
  now?: () => Date;
}

/** Writes one actor's log records. */
export interface ActorLogWriter {
  /** Forwards one line of container output (without its newline); empty lines are dropped. */
  line(containerName: string, line: Uint8Array | string): void;
  /** Emits a lifecycle event such as "Actor started". */
  event(message: string): void;
  /** A splitter turning `containerName`'s output chunks into {@link line} calls. */
  splitter(containerName: string): LineSplitter;
  /** Reads `stream` to its end through a splitter for `containerName`. */
  pipe(containerName: string, stream: AsyncIterable<Uint8Array>): Promise<void>;
}

const decoder = new TextDecoder();

function actorLabels(labels: ActorLabels): Record<string, string> {
  return {
    "ate.dev/actor_id": labels.actorId,
    "ate.dev/actor_template_name": labels.actorTemplateName,
    "ate.dev/actor_template_namespace": labels.actorTemplateNamespace,
  };
}

/**
 * The record for one container output line, as a JSON text without newline.
 *
 * @example
 * ```ts
 * formatActorLine("hi", "web", { actorId: "a", actorTemplateName: "t", actorTemplateNamespace: "n" },
 *   "labels", "2026-01-01T00:00:00Z");
 * // {"labels":{"ate.dev/actor_id":"a",...,"ate.dev/container_name":"web"},"message":"hi","time":"2026-01-01T00:00:00Z"}
 * ```
 */
export function formatActorLine(
  line: string,
  containerName: string,
  labels: ActorLabels,
  labelsKey: string,
  time: string,
): string {
  const ours = { ...actorLabels(labels), "ate.dev/container_name": containerName };
  const parsed = parseGoJson(line);
  if (!isGoObject(parsed)) {
    return encodeGoJson({ time, message: line, [labelsKey]: ours } as GoObject);
  }
  if (!("time" in parsed)) parsed.time = time;
  const existing = parsed[labelsKey];
  const merged: GoObject = isGoObject(existing) ? existing : Object.create(null);
  Object.assign(merged, ours);
  parsed[labelsKey] = merged;
  return encodeGoJson(parsed);
}

/** The record for a lifecycle event, as a JSON text without newline. */
export function formatActorEvent(
  message: string,
  labels: ActorLabels,
  labelsKey: string,
  time: string,
): string {
  return encodeGoJson({ time, message, [labelsKey]: actorLabels(labels) } as GoObject);
}

/** An actor log writer for `labels` writing whole records to `sink`. */
export function actorLogWriter(
  sink: LineSink,
  labels: ActorLabels,
  options: ActorLogOptions = {},
): ActorLogWriter {
  const labelsKey = options.onGce ? GCE_LABELS_KEY : LABELS_KEY;
  const now = options.now ?? (() => new Date());
  const writer: ActorLogWriter = {
    line(containerName, line) {
      const text = typeof line === "string" ? line : decoder.decode(line);
      if (text === "") return;
      sink(formatActorLine(text, containerName, labels, labelsKey, formatTime(now())) + "\n");
    },
    event(message) {
      sink(formatActorEvent(message, labels, labelsKey, formatTime(now())) + "\n");
    },
    splitter(containerName) {
      return new LineSplitter((line) => writer.line(containerName, line));
    },
    async pipe(containerName, stream) {
      const split = writer.splitter(containerName);
      try {
        for await (const chunk of stream) split.push(chunk);
      } finally {
        split.close();
      }
    },
  };
  return writer;
}

/** Longest line kept whole; a longer one is forwarded in pieces of this size. */
export const MAX_LINE_BYTES = 1 << 20;

/**
 * Splits a byte stream into lines at `\n` (the newline is dropped, `\r` is kept, as Go's
 * `ReadBytes('\n')`): `push` chunks as they arrive, `close` at end of stream to flush a final
 * unterminated line. A line longer than `maxLineBytes` is emitted in pieces.
 */
export class LineSplitter {
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #closed = false;

  constructor(
    readonly onLine: (line: Uint8Array) => void,
    readonly maxLineBytes: number = MAX_LINE_BYTES,
  ) {}

  /** Feeds the next chunk of the stream. */
  push(chunk: Uint8Array): void {
    if (this.#closed) throw new Error("LineSplitter: push after close");
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl < 0 ? chunk.length : nl;
      let piece = chunk.subarray(start, end);
      while (this.#pendingBytes + piece.length > this.maxLineBytes) {
        const room = this.maxLineBytes - this.#pendingBytes;
        this.#keep(piece.subarray(0, room));
        this.#flush();
        piece = piece.subarray(room);
      }
      this.#keep(piece);
      if (nl < 0) return;
      this.#flush();
      start = nl + 1;
    }
  }

  /** Ends the stream: emits the unterminated last line, if any. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pendingBytes > 0) this.#flush();
  }

  #keep(piece: Uint8Array): void {
    if (piece.length === 0) return;
    this.#pending.push(piece.slice());
    this.#pendingBytes += piece.length;
  }

  #flush(): void {
    const line = new Uint8Array(this.#pendingBytes);
    let off = 0;
    for (const p of this.#pending) line.set(p, off), off += p.length;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.onLine(line);
  }
}
