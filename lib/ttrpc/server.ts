/**
 * ttrpc server, for in-repo doubles (the kata-agent double) and tests.
 *
 * Contract: requests on one connection run concurrently, one handler per stream id; each response
 * is written as one whole frame, in completion order. An unknown service or method answers
 * UNIMPLEMENTED; a handler throwing {@link TtrpcError} answers its code and message, any other
 * throw answers UNKNOWN, and a non-Uint8Array result INTERNAL. A request's `timeout_nano` aborts
 * the handler's signal at the deadline (a handler failing after that answers DEADLINE_EXCEEDED).
 * Malformed or oversized requests and even stream ids are answered with an error status on their
 * stream and the connection carries on, as the Go server does. When the connection ends, every
 * running handler's signal is aborted and late responses are dropped.
 *
 * @module
 */

import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameTooLargeError,
  MAX_MESSAGE_SIZE,
  MESSAGE_TYPE_REQUEST,
  MESSAGE_TYPE_RESPONSE,
} from "./frame.ts";
import {
  decodeRequest,
  encodeResponse,
  metadataToRecord,
  type Request,
  type Status,
} from "./messages.ts";
import { Code, TtrpcError } from "./status.ts";
import type { TtrpcConn } from "./client.ts";

export type { TtrpcConn } from "./client.ts";

/** setTimeout's largest delay; longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What a handler learns about its call besides the payload. */
export interface TtrpcHandlerContext {
  /** Aborted at the request's deadline or when the connection ends. */
  signal: AbortSignal;
  metadata: Record<string, string[]>;
  /** The request's deadline as sent (`timeout_nano` in ms), when it had one. */
  timeoutMs?: number;
}

/** Handles one method: encoded request message in, encoded response message out. */
export type TtrpcHandler = (
  payload: Uint8Array,
  ctx: TtrpcHandlerContext,
) => Promise<Uint8Array>;

/** Server options. */
export interface TtrpcServerOptions {
  /** Largest message accepted or sent; default {@link MAX_MESSAGE_SIZE} (4 MiB). */
  maxMessageSize?: number;
  /** Called with handler failures that were not TtrpcError (answered as UNKNOWN). */
  onHandlerError?: (error: unknown, call: string) => void;
}

/**
 * A ttrpc server: register handlers, then serve connections.
 *
 * @example
 * ```ts
 * const server = new TtrpcServer();
 * server.register("test.Echo", "Echo", (payload) => Promise.resolve(payload));
 * const listener = Deno.listen({ transport: "unix", path: socketPath });
 * server.serveListener(listener); // until listener.close()
 * ```
 */
export class TtrpcServer {
  readonly #services = new Map<string, Map<string, TtrpcHandler>>();
  readonly #conns = new Set<TtrpcConn>();
  readonly #maxMessageSize: number;
  readonly #onHandlerError?: (error: unknown, call: string) => void;

  constructor(options: TtrpcServerOptions = {}) {
    this.#maxMessageSize = options.maxMessageSize ?? MAX_MESSAGE_SIZE;
    this.#onHandlerError = options.onHandlerError;
  }

  /** Registers the handler of `service`/`method`. Registering the same method twice throws. */
  register(service: string, method: string, handler: TtrpcHandler): void {
    let methods = this.#services.get(service);
    if (!methods) {
      methods = new Map();
      this.#services.set(service, methods);
    }
    if (methods.has(method)) {
      throw new Error(`ttrpc: ${service}/${method} is already registered`);
    }
    methods.set(method, handler);
  }

  /**
   * Serves one connection until the peer closes it, it fails, or {@link close} is called; then
   * aborts running handlers and closes the connection. Never rejects.
   */
  async serve(conn: TtrpcConn): Promise<void> {
    this.#conns.add(conn);
    try {
      await new ServerConnection(conn, {
        maxMessageSize: this.#maxMessageSize,
        resolve: (service, method) => this.#resolve(service, method),
        onHandlerError: this.#onHandlerError,
      }).run();
    } finally {
      this.#conns.delete(conn);
    }
  }

  /**
   * Accepts and serves connections until the listener is closed; resolves then. Connections
   * still open stay served until they end or {@link close} is called.
   */
  async serveListener(listener: AsyncIterable<TtrpcConn>): Promise<void> {
    try {
      for await (const conn of listener) this.serve(conn);
    } catch {
      // closed listener
    }
  }

  /** Closes every connection being served (their handlers are aborted). */
  close(): void {
    for (const conn of this.#conns) closeQuietly(conn);
  }

  #resolve(service: string, method: string): TtrpcHandler | Partial<Status> {
    const methods = this.#services.get(service);
    if (!methods) return { code: Code.UNIMPLEMENTED, message: `service ${service}` };
    return methods.get(method) ?? { code: Code.UNIMPLEMENTED, message: `method ${method}` };
  }
}

interface ConnectionConfig {
  maxMessageSize: number;
  /** The handler of a method, or the status answering a call to an unknown one. */
  resolve(service: string, method: string): TtrpcHandler | Partial<Status>;
  onHandlerError?: (error: unknown, call: string) => void;
}

/** One served connection: reads requests, runs their handlers, writes their responses. */
class ServerConnection {
  readonly #conn: TtrpcConn;
  readonly #config: ConnectionConfig;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #running = new Map<number, AbortController>();
  #open = true;

  constructor(conn: TtrpcConn, config: ConnectionConfig) {
    this.#conn = conn;
    this.#config = config;
    this.#writer = conn.writable.getWriter();
  }

  async run(): Promise<void> {
    const reader = this.#conn.readable.getReader();
    const decoder = new FrameDecoder({
      maxMessageSize: this.#config.maxMessageSize,
      skipOversized: true,
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const frame of decoder.push(value)) this.#onFrame(frame);
      }
    } catch {
      // The connection failed or was closed under us: same ending as EOF.
    } finally {
      this.#open = false;
      for (const controller of this.#running.values()) {
        controller.abort(new TtrpcError(Code.CANCELLED, "the connection closed"));
      }
      closeQuietly(this.#conn);
      reader.cancel().catch(() => {});
      this.#writer.abort().catch(() => {});
    }
  }

  #onFrame(frame: Frame): void {
    if (frame.type !== MESSAGE_TYPE_REQUEST) return; // ignored for forward compatibility
    const { streamId } = frame;
    if (frame.oversizedLength !== undefined) {
      this.#respond(streamId, {
        code: Code.RESOURCE_EXHAUSTED,
        message: `message length ${frame.oversizedLength} exceeds the maximum message size ` +
          `of ${this.#config.maxMessageSize}`,
      });
      return;
    }
    let request: Request;
    try {
      request = decodeRequest(frame.payload);
    } catch (e) {
      this.#respond(streamId, {
        code: Code.INVALID_ARGUMENT,
        message: `unmarshal request error: ${(e as Error).message}`,
      });
      return;
    }
    if (streamId % 2 !== 1) {
      this.#respond(streamId, {
        code: Code.INVALID_ARGUMENT,
        message: "StreamID must be odd for client initiated streams",
      });
      return;
    }
    if (this.#running.has(streamId)) {
      this.#respond(streamId, {
        code: Code.INVALID_ARGUMENT,
        message: `stream ${streamId} already has a call in progress`,
      });
      return;
    }
    const handler = this.#config.resolve(request.service, request.method);
    if (typeof handler !== "function") {
      this.#respond(streamId, handler);
      return;
    }
    this.#start(streamId, request, handler);
  }

  /** Runs a handler under the request's deadline and answers with its outcome. */
  #start(streamId: number, request: Request, handler: TtrpcHandler): void {
    const call = `${request.service}/${request.method}`;
    const controller = new AbortController();
    this.#running.set(streamId, controller);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timeoutMs: number | undefined;
    if (request.timeoutNano !== 0n) {
      // Go clients send the time left, which is negative when the deadline already passed.
      timeoutMs = Math.max(0, Number(request.timeoutNano) / 1e6);
      const limit = timeoutMs;
      const expire = () =>
        controller.abort(
          new TtrpcError(Code.DEADLINE_EXCEEDED, `deadline of ${Math.ceil(limit)} ms exceeded`, {
            call,
          }),
        );
      if (timeoutMs === 0) expire();
      // Longer than a timer can wait (~24.8 days): no different from no deadline here.
      else if (timeoutMs <= MAX_TIMER_MS) timer = setTimeout(expire, timeoutMs);
    }
    const ctx: TtrpcHandlerContext = {
      signal: controller.signal,
      metadata: metadataToRecord(request.metadata),
      timeoutMs,
    };
    Promise.resolve()
      .then(() => handler(request.payload, ctx))
      .then(
        (result) => {
          if (result instanceof Uint8Array) this.#respond(streamId, {}, result);
          else {
            this.#respond(streamId, {
              code: Code.INTERNAL,
              message: `handler of ${call} returned ${typeof result}, not bytes`,
            });
          }
        },
        (error) => this.#respond(streamId, this.#statusOf(error, controller.signal, call)),
      )
      .finally(() => {
        if (timer !== undefined) clearTimeout(timer);
        this.#running.delete(streamId);
      });
  }

  #statusOf(error: unknown, signal: AbortSignal, call: string): Partial<Status> {
    if (error instanceof TtrpcError) {
      return { code: error.code, message: error.rpcMessage, details: error.details };
    }
    if (signal.aborted && signal.reason instanceof TtrpcError) {
      return { code: signal.reason.code, message: signal.reason.rpcMessage };
    }
    this.#config.onHandlerError?.(error, call);
    return { code: Code.UNKNOWN, message: error instanceof Error ? error.message : String(error) };
  }

  /** Writes one response frame; never throws (a broken connection just drops it). */
  #respond(streamId: number, status: Partial<Status>, payload?: Uint8Array): void {
    if (!this.#open) return;
    let frame: Uint8Array;
    try {
      frame = encodeFrame(
        streamId,
        MESSAGE_TYPE_RESPONSE,
        0,
        encodeResponse({ status, payload }),
        this.#config.maxMessageSize,
      );
    } catch (e) {
      frame = encodeFrame(
        streamId,
        MESSAGE_TYPE_RESPONSE,
        0,
        encodeResponse({
          status: e instanceof FrameTooLargeError
            ? {
              code: Code.RESOURCE_EXHAUSTED,
              message: `response of ${e.length} bytes exceeds the ${e.limit}-byte message limit`,
            }
            : { code: Code.INTERNAL, message: `encoding the response failed: ${e}` },
        }),
      );
    }
    // The writer queues whole frames, so concurrent responses never interleave.
    this.#writer.write(frame).catch(() => {}); // a failed write means the connection is gone
  }
}

function closeQuietly(conn: TtrpcConn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
