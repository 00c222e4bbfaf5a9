/**
 * Interop with containerd's Go ttrpc (Debian's golang-github-containerd-ttrpc-dev): our client
 * against the Go server, the Go client against our server, and our encodings against Go's.
 * The Go side is tests/go/ttrpc-peer, built (and cached) by tests/gobuild.ts.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "../assert.ts";
import { buildGoPeer } from "../gobuild.ts";
import { Code, TtrpcClient, TtrpcConnectionError, TtrpcError } from "../../lib/ttrpc/client.ts";
import { TtrpcServer } from "../../lib/ttrpc/server.ts";
import { MAX_MESSAGE_SIZE } from "../../lib/ttrpc/frame.ts";
import { encodeRequest, encodeResponse } from "../../lib/ttrpc/messages.ts";

const SERVICE = "ateom.test.Peer";
const enc = new TextEncoder();
const dec = new TextDecoder();
const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** The peer's only message: Blob {bytes data = 1}. */
function blob(data: Uint8Array | string): Uint8Array {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  if (bytes.length === 0) return new Uint8Array(0);
  const length: number[] = [];
  for (let n = bytes.length;; n = Math.floor(n / 128)) {
    if (n < 128) {
      length.push(n);
      break;
    }
    length.push((n % 128) | 0x80);
  }
  return new Uint8Array([0x0a, ...length, ...bytes]);
}

function unblob(message: Uint8Array): Uint8Array {
  if (message.length === 0) return message;
  assertEquals(message[0], 0x0a, "Blob must start with field 1, wire type 2");
  let length = 0;
  let shift = 1;
  let i = 1;
  for (;; i++) {
    length += (message[i] & 0x7f) * shift;
    shift *= 128;
    if ((message[i] & 0x80) === 0) break;
  }
  assertEquals(message.length, i + 1 + length, "Blob length");
  return message.subarray(i + 1);
}

function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7) & 0xff;
  return out;
}

Deno.test("our Request/Response encodings equal Go's (gogo/protobuf) bytes", async () => {
  const peer = await buildGoPeer("ttrpc-peer");
  const output = await new Deno.Command(peer, { args: ["golden"] }).output();
  assert(output.success, dec.decode(output.stderr));
  const lines = dec.decode(output.stdout).trim().split("\n");
  assertEquals(lines, [
    hex(encodeRequest({
      service: "svc",
      method: "M",
      payload: Uint8Array.of(1, 2),
      timeoutNano: 1_000_000_000n,
      metadata: [{ key: "k", value: "v" }, { key: "k", value: "w" }],
    })),
    hex(encodeResponse({ status: { code: 5, message: "nf" }, payload: Uint8Array.of(9) })),
    hex(encodeResponse({})),
  ]);
});

/** Runs the Go server on a fresh socket for `fn`; stops it and removes everything after. */
async function withGoServer(fn: (socket: string, stop: () => Promise<void>) => Promise<void>) {
  const peer = await buildGoPeer("ttrpc-peer");
  const dir = await Deno.makeTempDir({ prefix: "ttrpc-go-" });
  const socket = `${dir}/peer.sock`;
  const child = new Deno.Command(peer, {
    args: ["serve", socket],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const stdin = child.stdin.getWriter();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await stdin.close().catch(() => {});
    await child.status;
  };
  try {
    // The peer prints "ready" once it listens.
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("ready\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`go ttrpc peer exited before listening; printed ${seen}`);
      seen += value;
    }
    await reader.cancel();
    await fn(socket, stop);
  } finally {
    await stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function connectClient(socket: string): Promise<TtrpcClient> {
  return new TtrpcClient(await Deno.connect({ transport: "unix", path: socket }));
}

/** Runs `fn` with our client connected to a fresh Go server; closes both afterwards. */
async function withGoClient(fn: (client: TtrpcClient) => Promise<void>) {
  await withGoServer(async (socket) => {
    const client = await connectClient(socket);
    try {
      await fn(client);
    } finally {
      client.close();
      await client.closed;
    }
  });
}

Deno.test("our client against the Go server: unary, metadata, concurrency", async () => {
  await withGoClient(async (client) => {
    const echoed = await client.call(SERVICE, "Echo", blob("hello from deno"));
    assertEquals(dec.decode(unblob(echoed)), "hello from deno");
    assertEquals(unblob(await client.call(SERVICE, "Echo", new Uint8Array(0))).length, 0);
    const md = await client.call(SERVICE, "Metadata", new Uint8Array(0), {
      metadata: { trace: ["a", "b"], x: ["1"] },
    });
    assertEquals(dec.decode(unblob(md)), "trace=a,b\nx=1");
    const payloads = Array.from({ length: 50 }, (_, i) => pattern(i * 1000 + 1).fill(i, 0, 1));
    const replies = await Promise.all(payloads.map((p) => client.call(SERVICE, "Echo", blob(p))));
    replies.forEach((reply, i) => assertEquals(unblob(reply), payloads[i], `call ${i}`));
  });
});

Deno.test("our client against the Go server: deadlines reach the server", async () => {
  await withGoClient(async (client) => {
    const none = await client.call(SERVICE, "Deadline", new Uint8Array(0));
    assertEquals(dec.decode(unblob(none)), "none");
    const set = await client.call(SERVICE, "Deadline", new Uint8Array(0), { timeoutMs: 60_000 });
    assertEquals(dec.decode(unblob(set)), "set");
    const err = await assertRejects(
      () => client.call(SERVICE, "Block", new Uint8Array(0), { timeoutMs: 100 }),
      `ttrpc call ${SERVICE}/Block: DEADLINE_EXCEEDED: no response within 100 ms`,
    );
    assertEquals((err as TtrpcError).code, Code.DEADLINE_EXCEEDED);
    // The Go handler's context expired from timeout_nano alone.
    const seen = await client.call(SERVICE, "LastBlock", new Uint8Array(0));
    assertEquals(dec.decode(unblob(seen)), "deadline=true err=context deadline exceeded");
  });
});

Deno.test("our client against the Go server: error statuses", async () => {
  await withGoClient(async (client) => {
    const cases: [string, string, number, string][] = [
      ["Fail", "5:container c1 not found", Code.NOT_FOUND, "container c1 not found"],
      ["Fail", "13:boom", Code.INTERNAL, "boom"],
      ["Fail", "6:sandbox exists", Code.ALREADY_EXISTS, "sandbox exists"],
      ["Nope", "", Code.UNIMPLEMENTED, "method Nope"],
    ];
    for (const [method, data, code, message] of cases) {
      const err = await assertRejects(() => client.call(SERVICE, method, blob(data)));
      assert(err instanceof TtrpcError, String(err));
      assertEquals([err.code, err.rpcMessage], [code, message], method);
    }
    const service = await assertRejects(() => client.call("no.Such", "X", new Uint8Array(0)));
    assertEquals((service as TtrpcError).rpcMessage, "service no.Such");
  });
});

Deno.test("our client against the Go server: large payloads and the 4 MiB limit", async () => {
  await withGoClient(async (client) => {
    // Largest Echo: Request and Blob wrappers take a few bytes of the 4 MiB.
    const big = pattern(MAX_MESSAGE_SIZE - 64);
    const [echoed, grown] = await Promise.all([
      client.call(SERVICE, "Echo", blob(big)),
      client.call(SERVICE, "Big", blob(String(MAX_MESSAGE_SIZE - 32))),
    ]);
    assertEquals(unblob(echoed), big);
    assertEquals(unblob(grown), pattern(MAX_MESSAGE_SIZE - 32));
    // Go 1.1 sends an oversized response; we skip it and fail only that call.
    const err = await assertRejects(
      () => client.call(SERVICE, "Big", blob(String(MAX_MESSAGE_SIZE))),
      /RESOURCE_EXHAUSTED: response is 41943\d\d bytes, over the 4194304-byte message limit/,
    );
    assertEquals((err as TtrpcError).code, Code.RESOURCE_EXHAUSTED);
    assertEquals(dec.decode(unblob(await client.call(SERVICE, "Echo", blob("ok")))), "ok");
  });
});

Deno.test("our client against the Go server: server exit fails in-flight calls", async () => {
  await withGoServer(async (socket, stop) => {
    const client = await connectClient(socket);
    const blocked = [1, 2, 3].map(() =>
      client.call(SERVICE, "Block", new Uint8Array(0)).then(() => null, (e: Error) => e)
    );
    // A round trip after the Block calls proves the server has them.
    await client.call(SERVICE, "Echo", blob("x"));
    await stop();
    for (const outcome of await Promise.all(blocked)) {
      assert(outcome instanceof TtrpcConnectionError, String(outcome));
      assertEquals(outcome.code, Code.UNAVAILABLE);
      assertEquals(
        outcome.rpcMessage,
        "the server closed the connection, before the response arrived",
      );
    }
    await client.closed;
  });
});

Deno.test("the Go client against our server", async () => {
  const peer = await buildGoPeer("ttrpc-peer");
  const dir = await Deno.makeTempDir({ prefix: "ttrpc-go-" });
  const socket = `${dir}/ours.sock`;
  const server = new TtrpcServer();
  server.register(SERVICE, "Echo", (payload) => Promise.resolve(blob(unblob(payload))));
  server.register(SERVICE, "Metadata", (_payload, ctx) => {
    const lines = Object.entries(ctx.metadata).map(([k, vs]) => `${k}=${vs.join(",")}`).sort();
    return Promise.resolve(blob(lines.join("\n")));
  });
  // Holds 40 calls, then answers them in reverse arrival order.
  const gate: (() => void)[] = [];
  server.register(SERVICE, "Gate", async (payload) => {
    await new Promise<void>((release) => {
      gate.push(release);
      if (gate.length === 40) { for (const r of gate.reverse()) r(); }
    });
    return blob(unblob(payload));
  });
  server.register(SERVICE, "Fail", (payload) => {
    const [code, message] = dec.decode(unblob(payload)).split(/:(.*)/s);
    throw new TtrpcError(Number(code), message);
  });
  let blockSeen: (text: string) => void;
  const blockResult = new Promise<string>((resolve) => blockSeen = resolve);
  server.register(SERVICE, "Block", (_payload, ctx) =>
    new Promise((_resolve, reject) => {
      ctx.signal.addEventListener("abort", () => {
        const reason = ctx.signal.reason as TtrpcError;
        blockSeen(`timeoutMs=${ctx.timeoutMs} code=${reason.code}`);
        reject(reason);
      });
    }));
  server.register(SERVICE, "LastBlock", async () => blob(await blockResult));

  const listener = Deno.listen({ transport: "unix", path: socket });
  const serving = server.serveListener(listener);
  try {
    const output = await new Deno.Command(peer, { args: ["call", socket] }).output();
    assert(output.success, dec.decode(output.stderr));
    const steps = Object.fromEntries(
      dec.decode(output.stdout).trim().split("\n").map((line) => {
        const step = JSON.parse(line);
        return [step.step, step];
      }),
    );
    assertEquals(steps.echo, { step: "echo", code: 0, data: "hello from go" });
    assertEquals(steps.metadata, { step: "metadata", code: 0, data: "trace=a,b" });
    assertEquals(steps.concurrent, { step: "concurrent", code: 0, ok: true });
    assertEquals(steps.fail, { step: "fail", code: 5, message: "container c1 not found" });
    assertEquals(steps.unimplemented, {
      step: "unimplemented",
      code: Code.UNIMPLEMENTED,
      message: "method NoSuchMethod",
    });
    // Both ends enforce the deadline; whichever fires first decides what Go reports: its own
    // context error (status.Convert maps it to Unknown) or our server's DEADLINE_EXCEEDED.
    const deadline = `${steps.deadline.code} ${steps.deadline.message}`;
    assertMatch(deadline, /^(2 context deadline exceeded|4 deadline of 1[45]\d ms exceeded)$/);
    const seen = /^timeoutMs=([\d.]+) code=(\d+)$/.exec(steps["deadline-seen"].data);
    assert(seen, `deadline-seen: ${steps["deadline-seen"].data}`);
    assert(Number(seen[1]) > 0 && Number(seen[1]) <= 150, `timeout sent: ${seen[1]} ms`);
    assertEquals(Number(seen[2]), Code.DEADLINE_EXCEEDED);
    assertEquals(steps.big, { step: "big", code: 0, ok: true });
    assertEquals(steps["too-big"].code, Code.RESOURCE_EXHAUSTED);
    assertEquals(
      // Blob(4 MiB + 1) plus Blob and Request framing.
      steps["too-big"].message,
      "message length 4194338 exceeds the maximum message size of 4194304",
    );
    assertEquals(steps.after, { step: "after", code: 0, data: "still alive" });
  } finally {
    listener.close();
    server.close();
    await serving;
    await Deno.remove(dir, { recursive: true });
  }
});
