/**
 * Object stores (file://, s3:// against s3rver) against one contract, and push/pull round trips
 * with tampered and partial snapshots.
 */
import { createHash } from "node:crypto";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { type S3Server, startS3Server } from "../../tests/s3_server.ts";
import { decodeManifest, encodeManifest } from "./manifest.ts";
import { NotFoundError, openStore, type Store } from "./store.ts";
import { MEMORY_OBJECT, pullSnapshot, pushSnapshot } from "./transfer.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

function streamOf(bytes: Uint8Array, piece = 100 * KiB): ReadableStream<Uint8Array> {
  let pos = 0;
  return new ReadableStream({
    pull(c) {
      if (pos >= bytes.length) return c.close();
      c.enqueue(bytes.slice(pos, pos + piece));
      pos += piece;
    },
  });
}

async function bytesOf(stream: ReadableStream<Uint8Array>) {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function pattern(n: number, seed: number) {
  return new Uint8Array(n).map((_, i) => (i * 31 + seed + (i >> 12)) & 0xff);
}

async function storeContract(store: Store) {
  assertEquals(await store.list(), []);
  assertEquals(await store.exists("a/b.bin"), false);
  const missing = await assertRejects(() => store.get("missing"), /does not exist|not found/);
  assert(missing instanceof NotFoundError);
  await store.put("small.txt", new TextEncoder().encode("hello"));
  assertEquals(new TextDecoder().decode(await bytesOf(await store.get("small.txt"))), "hello");
  const big = pattern(5 * MiB + 123, 1);
  await store.put("a/b.bin", streamOf(big));
  assertEquals(await bytesOf(await store.get("a/b.bin")), big);
  assertEquals(await store.exists("a/b.bin"), true);
  assertEquals(await store.list(), ["a/b.bin", "small.txt"]);
  assertEquals(await store.list("a/"), ["a/b.bin"]);
  await store.put("small.txt", streamOf(new Uint8Array()));
  assertEquals((await bytesOf(await store.get("small.txt"))).length, 0);
  await store.delete("small.txt");
  await store.delete("small.txt");
  assertEquals(await store.list(), ["a/b.bin"]);
  for (const bad of ["../x", "/abs", "a//b", "a/./b", ""]) {
    await assertRejects(() => store.put(bad, new Uint8Array()), "invalid object name");
  }
  // A stream that fails midway leaves no object.
  let sent = 0;
  const failing = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent++ < 30) c.enqueue(pattern(100 * KiB, sent));
      else c.error(new Error("source broke"));
    },
  });
  await assertRejects(() => store.put("broken.bin", failing), "source broke");
  assertEquals(await store.exists("broken.bin"), false);
  assertEquals(await store.list(), ["a/b.bin"]);
}

/** Store options for the s3rver test server: its credentials, 1 MiB parts, no AWS_* env. */
function s3Options(s3: S3Server) {
  return {
    endpoint: s3.endpoint,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    partSize: 1 * MiB,
    env: {},
  };
}

Deno.test("file store: put/get/list/delete/exists, atomic puts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "store-file-" });
  try {
    await storeContract(openStore(`file://${dir}/objects/`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("s3 store against s3rver: multipart parts, list, delete, signature check", async () => {
  const s3 = await startS3Server();
  try {
    const requests: string[] = [];
    const options = {
      ...s3Options(s3),
      fetch: (request: Request) => {
        const url = new URL(request.url);
        requests.push(
          `${request.method} ${url.pathname}${url.search.replace(/=[0-9a-f]{32}/, "=ID")}`,
        );
        return fetch(request);
      },
    };
    const store = openStore(`s3://${s3.bucket}/team/snap-1/`, options);
    await storeContract(store);
    // 5 MiB + 123 bytes in 1 MiB parts: a multipart upload of 6 parts, completed.
    const object = "/snapshots/team/snap-1/a/b.bin";
    const upload = requests.filter((r) =>
      r.includes(object) && !r.startsWith("GET") && !r.startsWith("HEAD")
    );
    assertEquals(upload, [
      `POST ${object}?uploads=`,
      ...[1, 2, 3, 4, 5, 6].map((n) => `PUT ${object}?partNumber=${n}&uploadId=ID`),
      `POST ${object}?uploadId=ID`,
    ]);
    // The stream that broke after 3 MiB: its multipart upload was aborted.
    assertEquals(
      requests.filter((r) => r.includes("broken.bin") && !r.startsWith("HEAD")),
      [
        "POST /snapshots/team/snap-1/broken.bin?uploads=",
        "PUT /snapshots/team/snap-1/broken.bin?partNumber=1&uploadId=ID",
        "PUT /snapshots/team/snap-1/broken.bin?partNumber=2&uploadId=ID",
        "DELETE /snapshots/team/snap-1/broken.bin?uploadId=ID",
      ],
    );
    // s3rver checks the access key (not the SigV4 signature itself).
    const wrong = openStore(`s3://${s3.bucket}/x/`, { ...options, accessKeyId: "NOPE" });
    await assertRejects(
      () => wrong.put("a", new Uint8Array(1)),
      "s3 PUT s3://snapshots/x/a failed: HTTP 403 InvalidAccessKeyId: The AWS Access Key Id you " +
        "provided does not exist in our records; check the credentials and the bucket's permissions",
    );
    // Settings from the environment, path style from the URI query.
    const fromEnv = openStore(`s3://${s3.bucket}/team/snap-1/?path-style=true`, {
      env: {
        AWS_ENDPOINT_URL: s3.endpoint,
        AWS_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      },
    });
    assertEquals(await fromEnv.list(), ["a/b.bin"]);
  } finally {
    await s3.close();
  }
});

Deno.test("openStore: unsupported schemes and missing credentials are one-line errors", () => {
  for (
    const [uri, message] of [
      ["gs://bucket/p/", 'unsupported store URI scheme "gs:"'],
      ["not a uri", "invalid store URI"],
    ]
  ) {
    try {
      openStore(uri);
      throw new Error("expected an error");
    } catch (e) {
      assert((e as Error).message.startsWith(message), (e as Error).message);
    }
  }
  try {
    openStore("s3://bucket/p/", { env: {} });
    throw new Error("expected an error");
  } catch (e) {
    assertEquals(
      (e as Error).message,
      "no credentials for s3://bucket/p/: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    );
  }
});

/** A checkpoint directory: a sparse memory image and small files. */
async function checkpoint(dir: string) {
  await Deno.mkdir(dir);
  await Deno.writeTextFile(`${dir}/config.json`, '{"vcpus":1}');
  await Deno.writeFile(`${dir}/state.json`, pattern(300 * KiB, 7));
  using f = await Deno.open(`${dir}/memory-ranges`, { write: true, create: true });
  await f.truncate(64 * MiB);
  await f.seek(4 * MiB, Deno.SeekMode.Start);
  await f.write(pattern(3 * MiB, 3));
  await f.seek(40 * MiB, Deno.SeekMode.Start);
  await f.write(pattern(64 * KiB, 9));
}

async function sha256(path: string) {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

async function transferCases(
  uri: string,
  options: Parameters<typeof pushSnapshot>[2],
  store: Store,
) {
  const root = await Deno.makeTempDir({ prefix: "transfer-" });
  try {
    await checkpoint(`${root}/src`);
    const manifest = await pushSnapshot(`${root}/src`, uri, options);
    assertEquals(manifest.files.map((f) => [f.name, f.object, f.encoding]), [
      ["config.json", "config.json", "identity"],
      ["memory-ranges", MEMORY_OBJECT, "sparse-zstd-v2"],
      ["state.json", "state.json", "identity"],
    ]);
    assertEquals(manifest.files[1].size, 64 * MiB);
    assertEquals(manifest.files[1].sha256, await sha256(`${root}/src/memory-ranges`));
    assertEquals(await store.list(), ["config.json", "manifest.json", MEMORY_OBJECT, "state.json"]);
    const packed = await bytesOf(await store.get(MEMORY_OBJECT));
    assertEquals(new TextDecoder().decode(packed.subarray(0, 8)), "ATESPRSE");
    assert(packed.length < 4 * MiB);

    await pullSnapshot(uri, `${root}/dst`, options);
    for (const name of ["config.json", "memory-ranges", "state.json"]) {
      assertEquals(await sha256(`${root}/dst/${name}`), await sha256(`${root}/src/${name}`));
    }
    const allocated = (await Deno.stat(`${root}/dst/memory-ranges`)).blocks! * 512;
    assert(allocated < 4 * MiB, `memory image not sparse: ${allocated}`);

    // Pulling into a non-empty directory is refused before anything is downloaded.
    await assertRejects(() => pullSnapshot(uri, `${root}/dst`, options), "exists and is not empty");

    // Tampered: one flipped byte in a small file, then in the memory image.
    const state = await bytesOf(await store.get("state.json"));
    state[1000] ^= 1;
    await store.put("state.json", state);
    await assertRejects(
      () => pullSnapshot(uri, `${root}/t1`, options),
      /^state\.json from .* does not match the manifest .*: the snapshot was modified or corrupted$/,
    );
    state[1000] ^= 1;
    await store.put("state.json", state);
    const manifestBytes = await bytesOf(await store.get("manifest.json"));
    const edited = decodeManifest(manifestBytes, "test");
    edited.files[1].sha256 = "0".repeat(64);
    await store.put("manifest.json", encodeManifest(edited.files));
    await assertRejects(
      () => pullSnapshot(uri, `${root}/t2`, options),
      /^memory-ranges from .* does not match the manifest/,
    );
    await store.put("manifest.json", manifestBytes);

    // Partial: no manifest.
    await store.delete("manifest.json");
    await assertRejects(
      () => pullSnapshot(uri, `${root}/t3`, options),
      /^no snapshot manifest at .*manifest\.json: the snapshot is incomplete/,
    );
    // Nothing but src and dst was left behind.
    assertEquals((await Array.fromAsync(Deno.readDir(root))).map((e) => e.name).sort(), [
      "dst",
      "src",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("push/pull over file://: round trip, tampered and partial snapshots refused", async () => {
  const objects = await Deno.makeTempDir({ prefix: "transfer-objects-" });
  try {
    const uri = `file://${objects}/snap/`;
    await transferCases(uri, {}, openStore(uri));
  } finally {
    await Deno.remove(objects, { recursive: true });
  }
});

Deno.test("push/pull over s3:// (s3rver): round trip with multipart, tampered, partial", async () => {
  const s3 = await startS3Server();
  try {
    const options = s3Options(s3);
    const uri = `s3://${s3.bucket}/node-a/snap-7/`;
    await transferCases(uri, options, openStore(uri, options));
  } finally {
    await s3.close();
  }
});

Deno.test("push refuses directories holding non-regular files", async () => {
  const root = await Deno.makeTempDir({ prefix: "transfer-bad-" });
  try {
    await Deno.mkdir(`${root}/src/sub`, { recursive: true });
    await assertRejects(
      () => pushSnapshot(`${root}/src`, `file://${root}/objects/`),
      "sub is not a regular file",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
