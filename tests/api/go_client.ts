/**
 * Builds and drives tests/go/ateomclient, a grpc-go client (the library atelet uses), so the API
 * tests also see the server the way atelet does. Built by tests/gobuild.ts against Debian's
 * golang-google-grpc-dev and golang-github-golang-protobuf-1-3-dev sources.
 *
 * @module
 */
import { buildGoPeer } from "../gobuild.ts";
import { TextLineStream } from "./lines.ts";

/** Builds (or reuses the cached build of) the client and returns its path. */
export function buildGoClient(): Promise<string> {
  return buildGoPeer("ateomclient");
}

/** One call: unary (`path`) or a reflection query (`reflect`: "list" or a symbol). */
export type GoCall =
  | { path: string; request?: Uint8Array; timeoutMs?: number }
  | { reflect: string };

export interface GoResult {
  code?: number;
  message?: string;
  response?: Uint8Array | null;
  services?: string[];
  file?: string;
  methods?: string[];
  error?: string;
}

const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));

/** Runs `calls` in order over one grpc-go connection to `socketPath`. */
export async function goCallAll(
  binary: string,
  socketPath: string,
  calls: GoCall[],
): Promise<GoResult[]> {
  const child = new Deno.Command(binary, {
    args: [socketPath],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const input = calls.map((c) =>
    JSON.stringify(
      "reflect" in c
        ? c
        : { path: c.path, request: b64(c.request ?? new Uint8Array()), timeout_ms: c.timeoutMs },
    ) + "\n"
  ).join("");
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const results: GoResult[] = [];
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream());
  for await (const line of lines) {
    const r = JSON.parse(line);
    if (typeof r.response === "string") {
      r.response = Uint8Array.from(atob(r.response), (c) => c.charCodeAt(0));
    }
    results.push(r);
  }
  const status = await child.status;
  if (!status.success) throw new Error(`ateomclient exited ${status.code}`);
  return results;
}
