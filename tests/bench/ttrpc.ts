/**
 * ttrpc client throughput, ours against containerd's Go client, both calling the Go server over
 * a unix socket. Prints time per call for each and the ratio (ours / Go); not part of `make test`.
 *
 * Run: `node_modules/@deno/linux-x64-glibc/deno run -A tests/bench/ttrpc.ts`
 *
 * @module
 */
import { buildGoPeer } from "../gobuild.ts";
import { TtrpcClient } from "../../lib/ttrpc/client.ts";

const SERVICE = "ateom.test.Peer";

const CASES = [
  { name: "small, sequential", calls: 5000, concurrency: 1, size: 64 },
  { name: "small, 32 in flight", calls: 20000, concurrency: 32, size: 64 },
  { name: "1 MiB, 4 in flight", calls: 200, concurrency: 4, size: 1 << 20 },
];

function blob(size: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7) & 0xff;
  const length: number[] = [];
  for (let n = size;; n = Math.floor(n / 128)) {
    if (n < 128) {
      length.push(n);
      break;
    }
    length.push((n % 128) | 0x80);
  }
  return new Uint8Array([0x0a, ...length, ...data]);
}

async function oursNs(socket: string, calls: number, concurrency: number, size: number) {
  const client = new TtrpcClient(await Deno.connect({ transport: "unix", path: socket }));
  const payload = blob(size);
  let remaining = calls;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (remaining-- > 0) await client.call(SERVICE, "Echo", payload);
    }),
  );
  const elapsed = (performance.now() - start) * 1e6;
  client.close();
  await client.closed;
  return elapsed;
}

async function goNs(peer: string, socket: string, c: (typeof CASES)[number]) {
  const args = ["bench", socket, String(c.calls), String(c.concurrency), String(c.size)];
  const output = await new Deno.Command(peer, { args }).output();
  if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
  return Number(new TextDecoder().decode(output.stdout).trim());
}

const peer = await buildGoPeer("ttrpc-peer");
const dir = await Deno.makeTempDir({ prefix: "ttrpc-bench-" });
const socket = `${dir}/peer.sock`;
const server = new Deno.Command(peer, {
  args: ["serve", socket],
  stdin: "piped",
  stdout: "piped",
}).spawn();
try {
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  for (let seen = ""; !seen.includes("ready\n");) {
    const { value, done } = await reader.read();
    if (done) throw new Error("go ttrpc peer exited before listening");
    seen += value;
  }
  await reader.cancel();
  for (const c of CASES) {
    // Alternate runs so both see the same machine state; keep the best of three each.
    const ours: number[] = [];
    const go: number[] = [];
    for (let round = 0; round < 3; round++) {
      ours.push(await oursNs(socket, c.calls, c.concurrency, c.size));
      go.push(await goNs(peer, socket, c));
    }
    const oursPerCall = Math.min(...ours) / c.calls / 1000;
    const goPerCall = Math.min(...go) / c.calls / 1000;
    console.log(
      `${c.name.padEnd(22)} ours ${oursPerCall.toFixed(1)} µs/call, ` +
        `go ${goPerCall.toFixed(1)} µs/call, ratio ${(oursPerCall / goPerCall).toFixed(2)}`,
    );
  }
} finally {
  await server.stdin.close();
  await server.status;
  await Deno.remove(dir, { recursive: true });
}
