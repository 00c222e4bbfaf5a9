/**
 * Receiving bytes and fds off the event loop (recvWithFdsAsync), and waking a pending read with
 * abort().
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { closeFd, fstatFd, O_RDWR, openFd } from "./libc.ts";
import { recvWithFdsAsync, UnixFdListener, UnixFdSocket } from "./fdpass.ts";

Deno.test("fdpass: recvWithFdsAsync receives bytes and fds off the event loop; EOF is empty", async () => {
  const dir = await Deno.makeTempDir();
  const listener = UnixFdListener.listen(`${dir}/s.sock`);
  const accepted = listener.accept();
  const client = UnixFdSocket.connect(`${dir}/s.sock`);
  const file = openFd("/dev/null", O_RDWR);
  const server = await accepted;
  try {
    // The receive is pending before anything is sent: it must not block the event loop.
    const pending = recvWithFdsAsync(server);
    await Promise.resolve();
    client.send(new TextEncoder().encode("PUT /api/v1/vm.add-net"), [file]);
    const got = await pending;
    assertEquals(new TextDecoder().decode(got.data), "PUT /api/v1/vm.add-net");
    assertEquals(got.fds.length, 1);
    const [a, b] = [fstatFd(file), fstatFd(got.fds[0])];
    assertEquals([b.dev, b.ino], [a.dev, a.ino]);
    closeFd(got.fds[0]);
    client.close();
    assertEquals((await recvWithFdsAsync(server)).data.length, 0);
  } finally {
    closeFd(file);
    closeFd(server);
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fdpass: abort() wakes a read pending on the FFI thread with EOF", async () => {
  const dir = await Deno.makeTempDir();
  const listener = UnixFdListener.listen(`${dir}/s.sock`);
  const accepted = listener.accept();
  const client = UnixFdSocket.connect(`${dir}/s.sock`);
  const server = await accepted;
  try {
    const read = client.read();
    client.abort();
    assertEquals((await read).length, 0);
    assert(client.fd >= 0, "abort does not close: close() does");
  } finally {
    client.close();
    closeFd(server);
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});
