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
import { decodeRequest, encodeResponse, metadataToRecord, type Status } from "./messages.ts";
import { Code, TtrpcError } from "./status.ts";
import type { TtrpcConn } from "./client.ts";

export type { TtrpcConn } from "./client.ts";

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
    const reader = conn.readable.getReader();
    const writer = conn.writable.getWriter();
    const running = new Map<number, AbortController>();
    let open = true;

    const respond = (streamId: number, status: Partial<Status>, payload?: Uint8Array) => {
      if (!open) return;
      let frame: Uint8Array;
      try {
        frame = encodeFrame(
          streamId,
          MESSAGE_TYPE_RESPONSE,
          0,
          encodeResponse({ status, payload }),
          this.#maxMessageSize,
        );
      } catch (e) {
        if (!(e instanceof FrameTooLargeError)) throw e;
        frame = encodeFrame(
          streamId,
          MESSAGE_TYPE_RESPONSE,
          0,
          encodeResponse({
            status: {
              code: Code.RESOURCE_EXHAUSTED,
              message: `response of ${e.length} bytes exceeds the ${e.limit}-byte message limit`,
            },
          }),
        );
      }
      // The writer queues whole frames, so concurrent responses never interleave.
      writer.write(frame).catch(() => {}); // a failed write means the connection is gone
    };

    const onFrame = (frame: Frame) => {
      if (frame.type !== MESSAGE_TYPE_REQUEST) return; // ignored for forward compatibility
      const { streamId } = frame;
      if (frame.oversizedLength !== undefined) {
        respond(streamId, {
          code: Code.RESOURCE_EXHAUSTED,
          message: `message length ${frame.oversizedLength} exceeds the maximum message size ` +
            `of ${this.#maxMessageSize}`,
        });
        return;
      }
      let request;
      try {
        request = decodeRequest(frame.payload);
      } catch (e) {
        respond(streamId, {
          code: Code.INVALID_ARGUMENT,
          message: `unmarshal request error: ${(e as Error).message}`,
        });
        return;
      }
      if (streamId % 2 !== 1) {
        respond(streamId, {
          code: Code.INVALID_ARGUMENT,
          message: "StreamID must be odd for client initiated streams",
        });
        return;
      }
      if (running.has(streamId)) {
        respond(streamId, {
          code: Code.INVALID_ARGUMENT,
          message: `stream ${streamId} already has a call in progress`,
        });
        return;
      }
      const handler = this.#services.get(request.service)?.get(request.method);
      if (!handler) {
        respond(streamId, {
          code: Code.UNIMPLEMENTED,
          message: this.#services.has(request.service)
            ? `method ${request.method}`
            : `service ${request.service}`,
        });
        return;
      }
      const call = `${request.service}/${request.method}`;
      const controller = new AbortController();
      running.set(streamId, controller);
      let timer: ReturnType<typeof setTimeout> | undefined;
      let timeoutMs: number | undefined;
      if (request.timeoutNano > 0n) {
        timeoutMs = Number(request.timeoutNano) / 1e6;
        timer = setTimeout(
          () =>
            controller.abort(
              new TtrpcError(Code.DEADLINE_EXCEEDED, `deadline of ${timeoutMs} ms exceeded`, {
                call,
              }),
            ),
          timeoutMs,
        );
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
            if (result instanceof Uint8Array) respond(streamId, {}, result);
            else {
              respond(streamId, {
                code: Code.INTERNAL,
                message: `handler of ${call} returned ${typeof result}, not bytes`,
              });
            }
          },
          (error) => respond(streamId, this.#statusOf(error, controller.signal, call)),
        )
        .finally(() => {
          if (timer !== undefined) clearTimeout(timer);
          running.delete(streamId);
        });
    };

    const decoder = new FrameDecoder({ maxMessageSize: this.#maxMessageSize, skipOversized: true });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const frame of decoder.push(value)) onFrame(frame);
      }
    } catch {
      // The connection failed or was closed under us: same ending as EOF.
    } finally {
      open = false;
      this.#conns.delete(conn);
      for (const controller of running.values()) {
        controller.abort(new TtrpcError(Code.CANCELLED, "the connection closed"));
      }
      try {
        conn.close();
      } catch {
        // already closed
      }
      reader.cancel().catch(() => {});
      writer.abort().catch(() => {});
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
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  }

  #statusOf(error: unknown, signal: AbortSignal, call: string): Partial<Status> {
    if (error instanceof TtrpcError) {
      return { code: error.code, message: error.rpcMessage, details: error.details };
    }
    if (signal.aborted && signal.reason instanceof TtrpcError) {
      return { code: signal.reason.code, message: signal.reason.rpcMessage };
    }
    this.#onHandlerError?.(error, call);
    return { code: Code.UNKNOWN, message: error instanceof Error ? error.message : String(error) };
  }
}
