/** dialHybridVsock against a fake hybrid vsock listener (a unix socket speaking CONNECT/OK). */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "../../tests/assert.ts";
import { dialHybridVsock, HybridVsockDialError } from "./hvsock.ts";
import { TtrpcClient } from "../ttrpc/client.ts";
import { encodeFrame, MESSAGE_TYPE_RESPONSE } from "../ttrpc/frame.ts";
import { encodeResponse } from "../ttrpc/messages.ts";
import { withTempDir } from "../../tests/temp.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads what the dialer sent up to and including the newline, byte by byte. */
async function readRequestLine(conn: Deno.Conn): Promise<string> {
  const byte = new Uint8Array(1);
  let line = "";
  while (!line.endsWith("\n")) {
    if (await conn.read(byte) === null) throw new Error("fake hvsock: EOF before request line");
    line += String.fromCharCode(byte[0]);
  }
  return line;
}

/** Waits for the other side to close: "closed" on EOF or reset. */
async function readUntilClosed(conn: Deno.Conn): Promise<string> {
  try {
    while (await conn.read(new Uint8Array(64)) !== null) {
      // discard
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.ConnectionReset)) throw e;
  }
  return "closed";
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

Deno.test("dial retries a close-without-reply, then hands over the bytes after OK intact", async () => {
  await withTempDir("hvsock-test-", async (dir) => {
    const path = `${dir}/vsock.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const requests: string[] = [];
    const fake = (async () => {
      // First connection: agent not listening yet, closed without a reply.
      const first = await listener.accept();
      requests.push(await readRequestLine(first));
      first.close();
      // Second: OK, and in the same write the first bytes of the ttrpc stream.
      const second = await listener.accept();
      requests.push(await readRequestLine(second));
      const frame = encodeFrame(
        1,
        MESSAGE_TYPE_RESPONSE,
        0,
        encodeResponse({
          payload: enc.encode("from the guest"),
        }),
      );
      const reply = new Uint8Array([...enc.encode("OK 1073741824\n"), ...frame]);
      await writeAll(second, reply);
      return second;
    })();
    const retries: string[] = [];
    const conn = await dialHybridVsock(path, 1024, {
      deadlineMs: 10_000,
      retryDelayMs: 1,
      onRetry: (reason) => retries.push(reason),
    });
    const guestSide = await fake;
    assertEquals(requests, ["CONNECT 1024\n", "CONNECT 1024\n"]);
    assertEquals(retries, ["connection closed without a reply (agent not listening)"]);
    // The response frame sent with the OK line answers the client's first call (stream 1).
    const client = new TtrpcClient(conn);
    const answer = await client.call("grpc.AgentService", "Check", new Uint8Array(0));
    assertEquals(dec.decode(answer), "from the guest");
    client.close();
    await client.closed;
    guestSide.close();
    listener.close();
  });
});

Deno.test("dial retries while the socket file is missing or refuses connections", async () => {
  await withTempDir("hvsock-test-", async (dir) => {
    const path = `${dir}/vsock.sock`;
    let listener: Deno.UnixListener | undefined;
    const retries: string[] = [];
    const dialing = dialHybridVsock(path, 2000, {
      retryDelayMs: 1,
      onRetry: (reason) => {
        retries.push(reason);
        if (retries.length === 1) {
          // A socket file nobody listens on: Deno unlinks the path it bound on close, so
          // keep a second link to the socket inode.
          const bound = Deno.listen({ transport: "unix", path: `${dir}/bound.sock` });
          Deno.linkSync(`${dir}/bound.sock`, path);
          bound.close();
        } else if (retries.length === 2) {
          Deno.removeSync(path);
          listener = Deno.listen({ transport: "unix", path });
          listener.accept().then(async (conn) => {
            assertEquals(await readRequestLine(conn), "CONNECT 2000\n");
            await writeAll(conn, enc.encode("OK 7\n"));
            conn.close();
          });
        }
      },
    });
    const conn = await dialing;
    assertEquals(retries, ["socket file does not exist yet", "connection refused"]);
    // The fake closed its side after OK: the stream ends cleanly with nothing extra.
    assertEquals(await conn.read(new Uint8Array(8)), null);
    conn.close();
    listener!.close();
  });
});

Deno.test("dial reports the deadline with the last reason", async () => {
  await withTempDir("hvsock-test-", async (dir) => {
    const path = `${dir}/vsock.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    let attempts = 0;
    const fake = (async () => {
      for await (const conn of listener) {
        attempts++;
        conn.close();
      }
    })();
    const err = await assertRejects(
      () => dialHybridVsock(path, 1024, { deadlineMs: 100, retryDelayMs: 5 }),
      `hybrid vsock dial ${path} port 1024: no "OK" reply within 100 ms (last attempt: `,
    );
    // Usually the last refusal; on a loaded machine the deadline may cut an attempt short.
    assertMatch(
      err.message,
      /\(last attempt: (connection closed without a reply \(agent not listening\)|no reply before the deadline)\); check that the VM booted/,
    );
    assert(err instanceof HybridVsockDialError);
    assert(attempts >= 1);
    listener.close();
    await fake;
  });
});

Deno.test("dial gives up at the deadline while the peer never answers", async () => {
  await withTempDir("hvsock-test-", async (dir) => {
    const path = `${dir}/vsock.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const silent = (async () => {
      const conn = await listener.accept();
      await readRequestLine(conn);
      // The dialer must close its socket when it gives up: we see EOF.
      const eof = await conn.read(new Uint8Array(1));
      conn.close();
      return eof;
    })();
    await assertRejects(
      () => dialHybridVsock(path, 5, { deadlineMs: 50, retryDelayMs: 5 }),
      "(last attempt: no reply before the deadline)",
    );
    assertEquals(await silent, null);
    listener.close();
  });
});

Deno.test("dial fails at once on a reply other than OK <n>", async () => {
  await withTempDir("hvsock-test-", async (dir) => {
    const path = `${dir}/vsock.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const replies = ["ERR no such port\n", "OK\n", "OK 12x\n", "x".repeat(40)];
    const fake = (async () => {
      for (const reply of replies) {
        const conn = await listener.accept();
        await readRequestLine(conn);
        await writeAll(conn, enc.encode(reply));
        // EOF (or a reset, when bytes were left unread) proves the dialer closed its socket.
        assertEquals(await readUntilClosed(conn), "closed");
        conn.close();
      }
    })();
    const retries: string[] = [];
    const onRetry = (reason: string) => retries.push(reason);
    await assertRejects(
      () => dialHybridVsock(path, 1, { onRetry }),
      `hybrid vsock dial ${path} port 1: unexpected reply "ERR no such port\\n", want "OK <port>"`,
    );
    await assertRejects(() => dialHybridVsock(path, 1, { onRetry }), 'unexpected reply "OK\\n"');
    await assertRejects(() => dialHybridVsock(path, 1, { onRetry }), 'unexpected reply "OK 12x');
    await assertRejects(
      () => dialHybridVsock(path, 1, { onRetry }),
      "reply exceeds 32 bytes without a newline",
    );
    assertEquals(retries, []);
    await fake;
    listener.close();
  });
});

Deno.test("dial is abortable while waiting for the reply and between attempts", async () => {
  await withTempDir("hvsock-test-", async (dir) => {
    const path = `${dir}/vsock.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const controller = new AbortController();
    const fake = (async () => {
      const conn = await listener.accept();
      await readRequestLine(conn);
      controller.abort(new Error("worker shutting down"));
      const eof = await conn.read(new Uint8Array(1));
      conn.close();
      return eof;
    })();
    const err = await assertRejects(
      () => dialHybridVsock(path, 1024, { signal: controller.signal }),
      `hybrid vsock dial ${path} port 1024: aborted: worker shutting down`,
    );
    assert(err instanceof HybridVsockDialError);
    assertEquals(await fake, null);
    listener.close();
    // Aborted during the pause between attempts (socket file missing).
    const between = new AbortController();
    const missing = `${dir}/missing.sock`;
    await assertRejects(
      () =>
        dialHybridVsock(missing, 1, {
          signal: between.signal,
          retryDelayMs: 60_000,
          onRetry: () => between.abort(new Error("stop")),
        }),
      "aborted: stop",
    );
  });
});

Deno.test("dial validates the port", async () => {
  const err = await assertRejects(() => dialHybridVsock("/nonexistent", -1), "port -1 is not");
  assertStringIncludes(err.message, "hybrid vsock dial");
});
