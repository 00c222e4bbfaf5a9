/**
 * Test helpers: drive tests/api/grpc_client.py (Debian python3-grpcio, a real gRPC client) against
 * a worker socket, and encode the requests it sends.
 *
 * @module
 */
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { TextLineStream } from "./lines.ts";

export const PYTHON = "/usr/bin/python3";
const SCRIPT = new URL("./grpc_client.py", import.meta.url).pathname;

/** One call of the client script (see grpc_client.py). */
export type Call =
  | { path: string; request?: Uint8Array; timeout?: number; cancelOnLine?: boolean }
  | { path: string; requests: Uint8Array[]; stream: true; timeout?: number }
  | { describe: Uint8Array[]; service: string };

/** The client's report of one call. */
export interface CallResult {
  code: string;
  code_num: number;
  details: string;
  responses?: Uint8Array[];
  // describe results
  service?: string;
  file?: string;
  methods?: { name: string; input: string; output: string; client_streaming: boolean }[];
  error?: string;
}

const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));
const unb64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

function scriptLine(calls: Call[]): string {
  return JSON.stringify({
    calls: calls.map((c) => {
      if ("describe" in c) return { describe: c.describe.map(b64), service: c.service };
      if ("requests" in c) {
        return { path: c.path, stream: true, requests: c.requests.map(b64), timeout: c.timeout };
      }
      return {
        path: c.path,
        request: b64(c.request ?? new Uint8Array()),
        timeout: c.timeout,
        cancel_on_line: c.cancelOnLine,
      };
    }),
  }) + "\n";
}

function parseResult(line: string): CallResult {
  const r = JSON.parse(line);
  if (r.responses) r.responses = r.responses.map(unb64);
  return r;
}

/** A running client process: read its output lines, answer `cancelOnLine` calls, await the end. */
export class GrpcClient {
  readonly #child: Deno.ChildProcess;
  readonly #lines: AsyncIterator<string>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;

  constructor(socketPath: string, calls: Call[]) {
    this.#child = new Deno.Command(PYTHON, {
      args: [SCRIPT, socketPath],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#stdin.write(new TextEncoder().encode(scriptLine(calls)));
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
      new TextLineStream(),
    )[Symbol.asyncIterator]();
  }

  /** The next output line as JSON (a call result or a `{"started": i}` notice). */
  async next(): Promise<Record<string, unknown>> {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error("grpc client exited early");
    return JSON.parse(value);
  }

  /** The next call result. */
  async result(): Promise<CallResult> {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error("grpc client exited early");
    return parseResult(value);
  }

  /** Tells a `cancelOnLine` call to cancel now. */
  async cancel(): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode("cancel\n"));
  }

  /** Waits for the process; throws unless it exited 0. */
  async finish(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    while (!(await this.#lines.next()).done) { /* drain */ }
    const status = await this.#child.status;
    if (!status.success) throw new Error(`grpc client exited ${status.code}`);
  }
}

/** Runs `calls` in order and returns their results. */
export async function callAll(socketPath: string, calls: Call[]): Promise<CallResult[]> {
  const client = new GrpcClient(socketPath, calls);
  const results: CallResult[] = [];
  for (let i = 0; i < calls.length; i++) results.push(await client.result());
  await client.finish();
  return results;
}

/** Serializes a message of `schema` built from `init`. */
export function encode<D extends DescMessage>(
  schema: D,
  init: Record<string, unknown>,
): Uint8Array {
  return toBinary(schema, create(schema, init as MessageInitShape<D>));
}
