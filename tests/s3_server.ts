/**
 * A real S3 server for tests: s3rver (npm) in a child Deno process on a loopback port, storing in
 * a temporary directory. Credentials are s3rver's fixed pair; the bucket is created at start.
 *
 * Run as a program it serves until stdin closes and prints its port as the first stdout line.
 *
 * @module
 */

export interface S3Server {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

export const S3RVER_KEY = "S3RVER";

/** Starts s3rver with `bucket`; call close() in a finally. */
export async function startS3Server(bucket = "snapshots"): Promise<S3Server> {
  const dir = await Deno.makeTempDir({ prefix: "s3rver-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "-A", new URL(import.meta.url).pathname, dir, bucket],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) break;
    text += value;
  }
  lines.releaseLock();
  const close = async () => {
    await stdin.close().catch(() => {});
    await child.stdout.cancel().catch(() => {});
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const port = Number(text.trim());
  if (!port) {
    await close();
    throw new Error(`s3rver did not start (printed ${JSON.stringify(text)})`);
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    accessKeyId: S3RVER_KEY,
    secretAccessKey: S3RVER_KEY,
    close,
  };
}

if (import.meta.main) {
  // deno-lint-ignore no-explicit-any
  const { default: S3rver } = await import("s3rver" as any);
  const [directory, bucket] = Deno.args;
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const info = await server.run();
  console.log(info.port);
  for await (const _ of Deno.stdin.readable) { /* serve until stdin closes */ }
  // Exit at once: server.close() would wait for the clients' idle keep-alive connections.
  Deno.exit(0);
}
