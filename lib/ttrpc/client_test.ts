/**
 * TtrpcClient and TtrpcServer against each other and against raw frame peers, over real unix
 * sockets.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "../../tests/assert.ts";
import { Code, TtrpcClient, TtrpcConnectionError, TtrpcError } from "./client.ts";
import { type TtrpcHandlerContext, TtrpcServer } from "./server.ts";
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  MAX_MESSAGE_SIZE,
  MESSAGE_TYPE_REQUEST,
  MESSAGE_TYPE_RESPONSE,
} from "./frame.ts";
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from "./messages.ts";
import { withTempDir } from "../../tests/temp.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A connected unix socket pair in a temp dir: `fn` gets the accepted and the dialled end. */
async function withUnixPair(
  fn: (serverSide: Deno.UnixConn, clientSide: Deno.UnixConn) => Promise<void>,
): Promise<void> {
  await withTempDir("ttrpc-test-", async (dir) => {
    const listener = Deno.listen({ transport: "unix", path: `${dir}/s.sock` });
    try {
      const accepted = listener.accept();
      const clientSide = await Deno.connect({ transport: "unix", path: `${dir}/s.sock` });
      await fn(await accepted, clientSide);
    } finally {
      listener.close();
    }
  });
}

/** A unix socket pair: server side served by `server`, client side wrapped in a TtrpcClient. */
function withPair(
  server: TtrpcServer,
  fn: (client: TtrpcClient) => Promise<void>,
): Promise<void> {
  return withUnixPair(async (serverSide, clientSide) => {
    const serving = server.serve(serverSide);
    const client = new TtrpcClient(clientSide);
    try {
      await fn(client);
    } finally {
      client.close();
      await client.closed;
      await serving;
    }
  });
}

/** A raw peer on the server side: reads frames itself and writes whatever bytes a test wants. */
function withRawServer(
  fn: (client: TtrpcClient, peer: RawPeer) => Promise<void>,
): Promise<void> {
  return withUnixPair(async (serverSide, clientSide) => {
    const client = new TtrpcClient(clientSide);
    const peer = new RawPeer(serverSide);
    try {
      await fn(client, peer);
    } finally {
      client.close();
      await client.closed;
      peer.close();
    }
  });
}

class RawPeer {
  #decoder = new FrameDecoder();
  #frames: Frame[] = [];
  #closed = false;
  constructor(readonly conn: Deno.Conn) {}

  async nextFrame(): Promise<Frame> {
    const buf = new Uint8Array(65536);
    while (this.#frames.length === 0) {
      const n = await this.conn.read(buf);
      if (n === null) throw new Error("raw peer: EOF");
      this.#frames.push(...this.#decoder.push(buf.slice(0, n)));
    }
    return this.#frames.shift()!;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  async respond(streamId: number, payload: Uint8Array, code = 0, message = ""): Promise<void> {
    const body = encodeResponse({ status: { code, message }, payload });
    await this.write(encodeFrame(streamId, MESSAGE_TYPE_RESPONSE, 0, body));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // closed by the test
    }
  }
}

function echoServer(): TtrpcServer {
  const server = new TtrpcServer();
  server.register("test.Echo", "Echo", (payload) => Promise.resolve(payload));
  server.register(
    "test.Echo",
    "Metadata",
    (_payload, ctx) => Promise.resolve(enc.encode(JSON.stringify(ctx.metadata))),
  );
  return server;
}

Deno.test("client sends odd increasing stream ids and a well-formed Request", async () => {
  await withRawServer(async (client, peer) => {
    const calls = [
      client.call("svc.A", "One", enc.encode("a")),
      client.call("svc.A", "Two", enc.encode("b"), { timeoutMs: 1500, metadata: { k: ["v"] } }),
      client.call("svc.A", "Three", new Uint8Array(0)),
    ];
    const frames = [await peer.nextFrame(), await peer.nextFrame(), await peer.nextFrame()];
    assertEquals(frames.map((f) => [f.streamId, f.type, f.flags]), [
      [1, MESSAGE_TYPE_REQUEST, 0],
      [3, MESSAGE_TYPE_REQUEST, 0],
      [5, MESSAGE_TYPE_REQUEST, 0],
    ]);
    const second = decodeRequest(frames[1].payload);
    assertEquals(
      [second.service, second.method, dec.decode(second.payload), second.timeoutNano],
      ["svc.A", "Two", "b", 1_500_000_000n],
    );
    assertEquals(second.metadata, [{ key: "k", value: "v" }]);
    assertEquals(decodeRequest(frames[0].payload).timeoutNano, 0n);
    // Answer out of order: 5, 1, 3.
    await peer.respond(5, enc.encode("r5"));
    await peer.respond(1, enc.encode("r1"));
    await peer.respond(3, enc.encode("r3"));
    assertEquals((await Promise.all(calls)).map((p) => dec.decode(p)), ["r1", "r3", "r5"]);
    assertEquals(client.inFlight, 0);
  });
});

Deno.test("unary calls through TtrpcServer, with metadata", async () => {
  await withPair(echoServer(), async (client) => {
    assertEquals(dec.decode(await client.call("test.Echo", "Echo", enc.encode("hello"))), "hello");
    assertEquals((await client.call("test.Echo", "Echo", new Uint8Array(0))).length, 0);
    const md = await client.call("test.Echo", "Metadata", new Uint8Array(0), {
      metadata: { a: ["1", "2"], b: ["3"] },
    });
    assertEquals(JSON.parse(dec.decode(md)), { a: ["1", "2"], b: ["3"] });
  });
});

Deno.test("50 concurrent calls complete out of order, each with its own response", async () => {
  const server = new TtrpcServer();
  const gates: { release: () => void; index: number }[] = [];
  let allArrived: () => void;
  const arrived = new Promise<void>((resolve) => allArrived = resolve);
  server.register("test.Slow", "Wait", async (payload) => {
    const index = Number(dec.decode(payload));
    await new Promise<void>((release) => {
      gates.push({ release, index });
      if (gates.length === 50) allArrived();
    });
    return enc.encode(`done-${index}`);
  });
  await withPair(server, async (client) => {
    const order: number[] = [];
    const calls = Array.from(
      { length: 50 },
      (_, i) =>
        client.call("test.Slow", "Wait", enc.encode(String(i))).then((p) => {
          order.push(i);
          return dec.decode(p);
        }),
    );
    await arrived;
    assertEquals(client.inFlight, 50);
    // Release in a scrambled order: odd indexes descending, then even ascending.
    const odd = gates.filter((g) => g.index % 2 === 1).sort((a, b) => b.index - a.index);
    const even = gates.filter((g) => g.index % 2 === 0).sort((a, b) => a.index - b.index);
    const releaseOrder = [...odd, ...even];
    for (const gate of releaseOrder) gate.release();
    const results = await Promise.all(calls);
    assertEquals(results, Array.from({ length: 50 }, (_, i) => `done-${i}`));
    assertEquals(order, releaseOrder.map((g) => g.index));
  });
});

Deno.test("a deadline rejects the call locally and aborts the server handler", async () => {
  const server = new TtrpcServer();
  const seen: Promise<{ reason: unknown; timeoutMs?: number }>[] = [];
  server.register("test.Slow", "Forever", (_payload, ctx: TtrpcHandlerContext) => {
    seen.push(
      new Promise((resolve) =>
        ctx.signal.addEventListener(
          "abort",
          () => resolve({ reason: ctx.signal.reason, timeoutMs: ctx.timeoutMs }),
        )
      ),
    );
    return new Promise((_resolve, reject) => {
      ctx.signal.addEventListener("abort", () => reject(new Error("gave up")));
    });
  });
  server.register("test.Echo", "Echo", (payload) => Promise.resolve(payload));
  await withPair(server, async (client) => {
    const err = await assertRejects(
      () => client.call("test.Slow", "Forever", new Uint8Array(0), { timeoutMs: 30 }),
      "ttrpc call test.Slow/Forever: DEADLINE_EXCEEDED: no response within 30 ms",
    );
    assertEquals((err as TtrpcError).code, Code.DEADLINE_EXCEEDED);
    const server = await seen[0];
    assertEquals(server.timeoutMs, 30);
    assert(server.reason instanceof TtrpcError);
    assertEquals(server.reason.code, Code.DEADLINE_EXCEEDED);
    // The server's late DEADLINE_EXCEEDED response is dropped; the connection keeps working.
    assertEquals(dec.decode(await client.call("test.Echo", "Echo", enc.encode("after"))), "after");
    assertEquals(client.inFlight, 0);
  });
});

Deno.test("a handler failing after its deadline answers DEADLINE_EXCEEDED", async () => {
  const server = new TtrpcServer();
  server.register("test.Slow", "Forever", (_payload, ctx) =>
    new Promise((_resolve, reject) => {
      ctx.signal.addEventListener("abort", () => reject(new Error("gave up")));
    }));
  await withRawServerless(server, async (peer) => {
    const request = encodeRequest({ service: "test.Slow", method: "Forever", timeoutNano: 1_000n });
    await peer.write(encodeFrame(1, MESSAGE_TYPE_REQUEST, 0, request));
    const frame = await peer.nextFrame();
    assertEquals(frame.streamId, 1);
    assertEquals(decodeResponse(frame.payload).status?.code, Code.DEADLINE_EXCEEDED);
  });
});

Deno.test("aborting a signal rejects only that call", async () => {
  await withRawServer(async (client, peer) => {
    const controller = new AbortController();
    const doomed = client.call("svc", "A", new Uint8Array(0), { signal: controller.signal });
    const kept = client.call("svc", "B", new Uint8Array(0));
    await peer.nextFrame();
    await peer.nextFrame();
    controller.abort(new Error("user pressed stop"));
    const err = await assertRejects(
      () => doomed,
      "ttrpc call svc/A: CANCELLED: call aborted: user pressed stop",
    );
    assertEquals((err as TtrpcError).code, Code.CANCELLED);
    assertEquals(client.inFlight, 1);
    // A late answer for the cancelled stream is ignored; the other call still completes.
    await peer.respond(1, enc.encode("late"));
    await peer.respond(3, enc.encode("B"));
    assertEquals(dec.decode(await kept), "B");
    // Already-aborted signals reject before anything is sent.
    await assertRejects(
      () => client.call("svc", "C", new Uint8Array(0), { signal: AbortSignal.abort("no") }),
      "CANCELLED: call aborted: no",
    );
  });
});

Deno.test("error statuses map to TtrpcError with code and message", async () => {
  const server = new TtrpcServer({ onHandlerError: () => {} });
  server.register("test.Fail", "NotFound", () => {
    throw new TtrpcError(Code.NOT_FOUND, "container c1 not found");
  });
  server.register("test.Fail", "Plain", () => Promise.reject(new Error("disk on fire")));
  server.register("test.Fail", "NotBytes", () => Promise.resolve("text" as unknown as Uint8Array));
  server.register("test.Fail", "BadCode", () => Promise.reject(new TtrpcError(NaN, "x")));
  await withPair(server, async (client) => {
    const notFound = await assertRejects(
      () => client.call("test.Fail", "NotFound", new Uint8Array(0)),
      "ttrpc call test.Fail/NotFound: NOT_FOUND: container c1 not found",
    ) as TtrpcError;
    assertEquals([notFound.code, notFound.rpcMessage], [5, "container c1 not found"]);
    const plain = await assertRejects(() => client.call("test.Fail", "Plain", new Uint8Array(0)));
    assertEquals([(plain as TtrpcError).code, (plain as TtrpcError).rpcMessage], [
      Code.UNKNOWN,
      "disk on fire",
    ]);
    const notBytes = await assertRejects(() =>
      client.call("test.Fail", "NotBytes", new Uint8Array(0))
    );
    assertEquals((notBytes as TtrpcError).code, Code.INTERNAL);
    await assertRejects(
      () => client.call("test.Fail", "BadCode", new Uint8Array(0)),
      "INTERNAL: encoding the response failed: RangeError: ttrpc: status code NaN is not an int32",
    );
    const method = await assertRejects(() => client.call("test.Fail", "Nope", new Uint8Array(0)));
    assertEquals([(method as TtrpcError).code, (method as TtrpcError).rpcMessage], [
      Code.UNIMPLEMENTED,
      "method Nope",
    ]);
    const service = await assertRejects(() => client.call("no.Such", "X", new Uint8Array(0)));
    assertEquals([(service as TtrpcError).code, (service as TtrpcError).rpcMessage], [
      Code.UNIMPLEMENTED,
      "service no.Such",
    ]);
  });
});

Deno.test("payloads near 4 MiB pass both ways; larger ones fail only their call", async () => {
  const server = echoServer();
  server.register("test.Big", "Grow", (payload) => {
    const out = new Uint8Array(MAX_MESSAGE_SIZE + 1);
    out.fill(payload[0]);
    return Promise.resolve(out);
  });
  await withPair(server, async (client) => {
    const probe = 1 << 21;
    const overhead =
      encodeRequest({ service: "test.Echo", method: "Echo", payload: new Uint8Array(probe) })
        .length - probe;
    const biggest = new Uint8Array(MAX_MESSAGE_SIZE - overhead);
    for (let i = 0; i < biggest.length; i++) biggest[i] = (i * 31) & 0xff;
    const concurrent = await Promise.all([
      client.call("test.Echo", "Echo", biggest),
      client.call("test.Echo", "Echo", biggest.subarray(0, 3 << 20)),
    ]);
    assertEquals(concurrent[0], biggest);
    assertEquals(concurrent[1], biggest.subarray(0, 3 << 20));
    const tooBig = await assertRejects(
      () => client.call("test.Echo", "Echo", new Uint8Array(biggest.length + 1)),
      "RESOURCE_EXHAUSTED: request is 4194305 bytes, over the 4194304-byte message limit",
    );
    assertEquals((tooBig as TtrpcError).code, Code.RESOURCE_EXHAUSTED);
    const grown = await assertRejects(
      () => client.call("test.Big", "Grow", Uint8Array.of(7)),
      "RESOURCE_EXHAUSTED: response of 4194312 bytes exceeds the 4194304-byte message limit",
    );
    assertEquals((grown as TtrpcError).code, Code.RESOURCE_EXHAUSTED);
    assertEquals(dec.decode(await client.call("test.Echo", "Echo", enc.encode("ok"))), "ok");
  });
});

Deno.test("an oversized response frame fails its call and the connection carries on", async () => {
  await withRawServer(async (client, peer) => {
    // Settled into a value at once: the rejection arrives before the test awaits it.
    const big = client.call("svc", "Big", new Uint8Array(0)).then(() => null, (e: Error) => e);
    const small = client.call("svc", "Small", new Uint8Array(0));
    await peer.nextFrame();
    await peer.nextFrame();
    const header = new Uint8Array(10);
    new DataView(header.buffer).setUint32(0, MAX_MESSAGE_SIZE + 1);
    new DataView(header.buffer).setUint32(4, 1);
    header[8] = MESSAGE_TYPE_RESPONSE;
    await peer.write(header);
    await peer.write(new Uint8Array(MAX_MESSAGE_SIZE + 1));
    await peer.respond(3, enc.encode("fine"));
    assertStringIncludes(
      String((await big)?.message),
      "ttrpc call svc/Big: RESOURCE_EXHAUSTED: response is 4194305 bytes, over the 4194304-byte",
    );
    assertEquals(dec.decode(await small), "fine");
  });
});

Deno.test("connection loss fails every in-flight call and later calls", async () => {
  await withRawServer(async (client, peer) => {
    const calls = [0, 1, 2].map((i) => client.call("svc", `M${i}`, new Uint8Array(0)));
    for (let i = 0; i < 3; i++) await peer.nextFrame();
    peer.close();
    for (const [i, outcome] of (await Promise.allSettled(calls)).entries()) {
      assert(outcome.status === "rejected");
      const err = outcome.reason;
      assert(err instanceof TtrpcConnectionError);
      assertEquals(err.code, Code.UNAVAILABLE);
      assertEquals(
        err.message,
        `ttrpc call svc/M${i}: UNAVAILABLE: the server closed the connection, ` +
          "before the response arrived",
      );
    }
    await client.closed;
    const later = await assertRejects(() => client.call("svc", "After", new Uint8Array(0)));
    assert(later instanceof TtrpcConnectionError);
    assertStringIncludes(later.message, "the server closed the connection");
  });
});

Deno.test("a connection cut mid-frame says so", async () => {
  await withRawServer(async (client, peer) => {
    const call = client.call("svc", "M", new Uint8Array(0));
    await peer.nextFrame();
    await peer.write(encodeFrame(1, MESSAGE_TYPE_RESPONSE, 0, new Uint8Array(8)).subarray(0, 12));
    peer.close();
    await assertRejects(() => call, "closed the connection in the middle of a message");
  });
});

Deno.test("client.close fails in-flight calls and aborts the server's handlers", async () => {
  const server = new TtrpcServer();
  let aborted: (reason: unknown) => void;
  const handlerAborted = new Promise((resolve) => aborted = resolve);
  let started: () => void;
  const handlerStarted = new Promise<void>((resolve) => started = resolve);
  server.register("test.Slow", "Forever", (_payload, ctx) => {
    ctx.signal.addEventListener("abort", () => aborted(ctx.signal.reason));
    started();
    return new Promise(() => {});
  });
  await withPair(server, async (client) => {
    const call = client.call("test.Slow", "Forever", new Uint8Array(0));
    await handlerStarted;
    client.close();
    await assertRejects(() => call, "UNAVAILABLE: the client was closed, before the response");
    await client.closed;
    const reason = await handlerAborted;
    assert(reason instanceof TtrpcError);
    assertMatch(reason.message, /CANCELLED: the connection closed/);
  });
});

Deno.test("client rejects bad timeouts without sending", async () => {
  await withRawServer(async (client) => {
    await assertRejects(
      () => client.call("svc", "M", new Uint8Array(0), { timeoutMs: 0 }),
      "timeoutMs must be in (0, 2147483647], got 0",
    );
    await assertRejects(
      () => client.call("svc", "M", new Uint8Array(0), { timeoutMs: 2 ** 31 }),
      "got 2147483648",
    );
    await assertRejects(
      () => client.call("svc", "M", new Uint8Array(0), { timeoutMs: NaN }),
      "got NaN",
    );
    assertEquals(client.inFlight, 0);
  });
});

/** A raw client side against a TtrpcServer, for requests TtrpcClient never sends. */
function withRawServerless(
  server: TtrpcServer,
  fn: (peer: RawPeer) => Promise<void>,
): Promise<void> {
  return withUnixPair(async (serverSide, clientSide) => {
    const serving = server.serve(serverSide);
    const peer = new RawPeer(clientSide);
    try {
      await fn(peer);
    } finally {
      peer.close();
      await serving;
    }
  });
}

Deno.test("server answers bad requests on their stream and keeps the connection", async () => {
  await withRawServerless(echoServer(), async (peer) => {
    await peer.write(
      encodeFrame(2, MESSAGE_TYPE_REQUEST, 0, encodeRequest({ service: "a", method: "b" })),
    );
    let frame = await peer.nextFrame();
    assertEquals(frame.streamId, 2);
    assertEquals(decodeResponse(frame.payload).status, {
      code: Code.INVALID_ARGUMENT,
      message: "StreamID must be odd for client initiated streams",
      details: [],
    });
    await peer.write(encodeFrame(3, MESSAGE_TYPE_REQUEST, 0, Uint8Array.of(0x0a, 0x05)));
    frame = await peer.nextFrame();
    assertEquals(frame.streamId, 3);
    const status = decodeResponse(frame.payload).status!;
    assertEquals(status.code, Code.INVALID_ARGUMENT);
    assertMatch(status.message, /^unmarshal request error: .*length past end/);
    // An oversized request: header only announces it; its bytes are skipped.
    const header = new Uint8Array(10);
    new DataView(header.buffer).setUint32(0, MAX_MESSAGE_SIZE + 1);
    new DataView(header.buffer).setUint32(4, 5);
    header[8] = MESSAGE_TYPE_REQUEST;
    await peer.write(header);
    await peer.write(new Uint8Array(MAX_MESSAGE_SIZE + 1));
    frame = await peer.nextFrame();
    assertEquals(frame.streamId, 5);
    assertEquals(decodeResponse(frame.payload).status?.code, Code.RESOURCE_EXHAUSTED);
    // Unknown frame types are ignored; the next request is served.
    await peer.write(encodeFrame(7, 9, 0, Uint8Array.of(1)));
    const echo = encodeRequest({ service: "test.Echo", method: "Echo", payload: enc.encode("x") });
    await peer.write(encodeFrame(9, MESSAGE_TYPE_REQUEST, 0, echo));
    frame = await peer.nextFrame();
    assertEquals(frame.streamId, 9);
    assertEquals(dec.decode(decodeResponse(frame.payload).payload), "x");
  });
});

Deno.test("server: a past deadline aborts at once, a huge one never fires early", async () => {
  const server = new TtrpcServer();
  server.register("test.Deadline", "Probe", (_payload, ctx) =>
    Promise.resolve(
      enc.encode(`${ctx.signal.aborted ? "aborted" : "running"} ${ctx.timeoutMs}`),
    ));
  await withRawServerless(server, async (peer) => {
    const probe = (streamId: number, timeoutNano: bigint) =>
      peer.write(
        encodeFrame(
          streamId,
          MESSAGE_TYPE_REQUEST,
          0,
          encodeRequest({ service: "test.Deadline", method: "Probe", timeoutNano }),
        ),
      );
    await probe(1, -5_000_000n);
    let frame = await peer.nextFrame();
    assertEquals(dec.decode(decodeResponse(frame.payload).payload), "aborted 0");
    // 30 days: beyond setTimeout's range, which would otherwise fire immediately.
    await probe(3, 30n * 86_400n * 1_000_000_000n);
    frame = await peer.nextFrame();
    assertEquals(dec.decode(decodeResponse(frame.payload).payload), "running 2592000000");
  });
});
