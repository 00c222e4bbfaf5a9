/**
 * ttrpc client: unary calls multiplexed over one connection by stream id.
 *
 * Contract: stream ids are odd and increase by 2 from 1; any number of calls may be in flight at
 * once and responses are matched by stream id, in whatever order they arrive. Each call may carry
 * a deadline (sent as `timeout_nano` and enforced locally) and an AbortSignal; either rejects
 * only that call. A non-OK google.rpc.Status rejects with {@link TtrpcError}. Messages over the
 * size limit are refused before sending and, when received, fail only their call. When the
 * connection ends (peer closed, I/O error, {@link TtrpcClient.close}) every in-flight and later
 * call rejects with {@link TtrpcConnectionError}, and the connection is closed.
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
import { decodeResponse, encodeRequest, metadataFromRecord } from "./messages.ts";
import { Code, TtrpcConnectionError, TtrpcError } from "./status.ts";

export { Code, TtrpcConnectionError, TtrpcError } from "./status.ts";

/** A byte-stream connection (a Deno.Conn fits). */
export interface TtrpcConn {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  close(): void;
}

/** Per-call options. */
export interface TtrpcCallOptions {
  /** Aborting rejects this call with code CANCELLED; the server's eventual response is dropped. */
  signal?: AbortSignal;
  /** Deadline in milliseconds: sent to the server and enforced here (DEADLINE_EXCEEDED). */
  timeoutMs?: number;
  /** Request metadata; a key may carry several values. */
  metadata?: Record<string, string[]>;
}

/** Client options. */
export interface TtrpcClientOptions {
  /** Largest message sent or accepted; default {@link MAX_MESSAGE_SIZE} (4 MiB). */
  maxMessageSize?: number;
}

interface PendingCall {
  call: string;
  resolve(payload: Uint8Array): void;
  reject(error: Error): void;
}

const FIRST_STREAM_ID = 1;
const LAST_STREAM_ID = 0xffff_ffff;
/** setTimeout's largest delay (~24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A ttrpc client over one connection, which it owns from construction on.
 *
 * @example
 * ```ts
 * const conn = await Deno.connect({ transport: "unix", path: socketPath });
 * const client = new TtrpcClient(conn);
 * const reply = await client.call("grpc.AgentService", "Check", request, { timeoutMs: 5000 });
 * client.close();
 * ```
 */
export class TtrpcClient {
  /** Resolves once the connection is gone (closed by either side or failed); never rejects. */
  readonly closed: Promise<void>;

  readonly #conn: TtrpcConn;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #maxMessageSize: number;
  readonly #calls = new Map<number, PendingCall>();
  #nextStreamId = FIRST_STREAM_ID;
  #failure: { reason: string; cause?: unknown } | null = null;

  constructor(conn: TtrpcConn, options: TtrpcClientOptions = {}) {
    this.#conn = conn;
    this.#maxMessageSize = options.maxMessageSize ?? MAX_MESSAGE_SIZE;
    this.#reader = conn.readable.getReader();
    this.#writer = conn.writable.getWriter();
    this.closed = this.#readLoop();
  }

  /** Number of calls awaiting a response. */
  get inFlight(): number {
    return this.#calls.size;
  }

  /**
   * Calls `service`/`method` with an encoded request message; resolves with the encoded response
   * message.
   *
   * @throws TtrpcError with the server's status, or DEADLINE_EXCEEDED, CANCELLED,
   *   RESOURCE_EXHAUSTED (size limit); TtrpcConnectionError (UNAVAILABLE) when the connection ends.
   */
  call(
    service: string,
    method: string,
    payload: Uint8Array,
    options: TtrpcCallOptions = {},
  ): Promise<Uint8Array> {
    const call = `${service}/${method}`;
    const { signal, timeoutMs } = options;
    if (this.#failure) {
      return Promise.reject(
        new TtrpcConnectionError(this.#failure.reason, { call, cause: this.#failure.cause }),
      );
    }
    if (signal?.aborted) return Promise.reject(cancelled(call, signal));
    if (timeoutMs !== undefined && !(timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS)) {
      return Promise.reject(
        new RangeError(
          `ttrpc call ${call}: timeoutMs must be in (0, ${MAX_TIMER_MS}], got ${timeoutMs}`,
        ),
      );
    }
    if (this.#nextStreamId > LAST_STREAM_ID) {
      return Promise.reject(
        new TtrpcConnectionError("stream ids exhausted on this connection; open a new one", {
          call,
        }),
      );
    }
    const streamId = this.#nextStreamId;
    let frame: Uint8Array;
    try {
      const request = encodeRequest({
        service,
        method,
        payload,
        timeoutNano: timeoutMs === undefined ? 0n : BigInt(Math.ceil(timeoutMs * 1e6)),
        metadata: metadataFromRecord(options.metadata ?? {}),
      });
      frame = encodeFrame(streamId, MESSAGE_TYPE_REQUEST, 0, request, this.#maxMessageSize);
    } catch (e) {
      if (e instanceof FrameTooLargeError) {
        return Promise.reject(
          new TtrpcError(
            Code.RESOURCE_EXHAUSTED,
            `request is ${e.length} bytes, over the ${e.limit}-byte message limit; ` +
              "send less per call",
            { call },
          ),
        );
      }
      return Promise.reject(e);
    }
    this.#nextStreamId += 2;

    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => pending.reject(cancelled(call, signal!));
      const settle = () => {
        this.#calls.delete(streamId);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const pending: PendingCall = {
        call,
        resolve: (response) => {
          settle();
          resolve(response);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      };
      this.#calls.set(streamId, pending);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          pending.reject(
            new TtrpcError(Code.DEADLINE_EXCEEDED, `no response within ${timeoutMs} ms`, { call }),
          );
        }, timeoutMs);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#writer.write(frame).catch((e) => this.#fail(`writing to the connection failed`, e));
    });
  }

  /** Closes the connection; in-flight and later calls reject with TtrpcConnectionError. */
  close(): void {
    this.#fail("the client was closed");
  }

  async #readLoop(): Promise<void> {
    const decoder = new FrameDecoder({ maxMessageSize: this.#maxMessageSize, skipOversized: true });
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) {
          this.#fail(
            decoder.buffered > 0
              ? `the server closed the connection in the middle of a message`
              : "the server closed the connection",
          );
          return;
        }
        for (const frame of decoder.push(value)) this.#dispatch(frame);
      }
    } catch (e) {
      this.#fail("reading from the connection failed", e);
    }
  }

  #dispatch(frame: Frame): void {
    // Other message types (streaming data in newer ttrpc) are ignored, as the Go client does.
    if (frame.type !== MESSAGE_TYPE_RESPONSE) return;
    const pending = this.#calls.get(frame.streamId);
    if (!pending) return; // abandoned (deadline or cancel) or never ours
    const { call } = pending;
    if (frame.oversizedLength !== undefined) {
      pending.reject(
        new TtrpcError(
          Code.RESOURCE_EXHAUSTED,
          `response is ${frame.oversizedLength} bytes, over the ${this.#maxMessageSize}-byte ` +
            "message limit; ask for less per call",
          { call },
        ),
      );
      return;
    }
    let response;
    try {
      response = decodeResponse(frame.payload);
    } catch (e) {
      pending.reject(new TtrpcError(Code.INTERNAL, (e as Error).message, { call, cause: e }));
      return;
    }
    const status = response.status;
    if (status && status.code !== Code.OK) {
      pending.reject(
        new TtrpcError(status.code, status.message, { call, details: status.details }),
      );
      return;
    }
    pending.resolve(response.payload);
  }

  /** Ends the connection once: fails every pending call and releases the streams. */
  #fail(reason: string, cause?: unknown): void {
    if (this.#failure) return;
    const detail = cause instanceof Error ? `${reason}: ${cause.message}` : reason;
    this.#failure = { reason: detail, cause };
    for (const pending of [...this.#calls.values()]) {
      pending.reject(
        new TtrpcConnectionError(`${detail}, before the response arrived`, {
          call: pending.call,
          cause,
        }),
      );
    }
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#reader.cancel().catch(() => {});
    this.#writer.abort().catch(() => {});
  }
}

function cancelled(call: string, signal: AbortSignal): TtrpcError {
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
  return new TtrpcError(Code.CANCELLED, `call aborted: ${reason}`, {
    call,
    cause: signal.reason,
  });
}
