/**
 * The standalone CLI's own work, end to end through bin/ateom-microvm, against a stand-in worker
 * (tests/standalone/fake_worker.ts: the real API server, a counter runtime) so these tests do not
 * depend on the micro-VM runtime: detached supervisors that outlive the CLI, the per-actor pod
 * network, ps/logs, checkpoint shipping to file:// and s3:// (loopback S3 server) with lineage,
 * restore (also --as another name), rm, and that nothing is left on the host.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { startS3Server } from "../s3_server.ts";
import {
  assertNoHostLeftovers,
  BIN,
  type Cli,
  DENO,
  followLogs,
  hostLinks,
  netnsNames,
  processesMentioning,
  withCli,
  writeAssets,
  writeBundle,
} from "./cli.ts";

const FAKE_WORKER = new URL("./fake_worker.ts", import.meta.url).pathname;
const WORKER_ENV = {
  ATEOM_MICROVM_WORKER: JSON.stringify([DENO, "run", "-A", "--quiet", FAKE_WORKER]),
};

type PsEntry = {
  name: string;
  state: string;
  pid: number | null;
  memoryBytes: number | null;
  uptimeSeconds: number | null;
  ports: string[];
  lineage: { uri: string; name: string }[];
};

async function ps(cli: Cli): Promise<PsEntry[]> {
  return JSON.parse(await cli.ok("ps", "--json"));
}

/** run → ps → logs → checkpoint → rm → restore → checkpoint → restore --as, through `store`. */
async function lifecycle(cli: Cli, name: string, store: (n: number) => string) {
  const work = join(cli.stateDir, "work");
  await Deno.mkdir(work);
  const bundle = await writeBundle(join(work, "bundle"), ["counter"]);
  const flags = await writeAssets(work);

  assertEquals(
    await cli.ok(
      "run",
      name,
      "--bundle",
      bundle,
      ...flags,
      "--memory",
      "256M",
      "--port",
      "18080:80",
    ),
    `${name}\n`,
  );
  // The supervisor outlived the CLI; its pod network exists.
  let [entry] = await ps(cli);
  assertEquals(entry.name, name);
  assertEquals(entry.state, "running");
  assert(entry.pid !== null && (await processesMentioning(cli.stateDir)).includes(entry.pid));
  assert(entry.memoryBytes !== null && entry.memoryBytes > 0, "memory of the VMM stand-in");
  assert(entry.uptimeSeconds !== null && entry.uptimeSeconds >= 0);
  assertEquals(entry.ports, ["18080:80"]);
  assertEquals(entry.lineage, []);
  assert(netnsNames().includes(`ateom-pod:${name}`));
  const text = await cli.ok("ps");
  assertMatch(
    text,
    new RegExp(
      `^NAME +STATE +PID +MEMORY +UPTIME +PORTS +SNAPSHOTS\n${name} +running +\\d+ +[\\d.]+ \\S+ +\\d+s +18080:80 +-\n$`,
    ),
  );

  assertEquals(
    await cli.ok("logs", name),
    "Actor starting\n" +
      'kata-config [hypervisor.clh] default_memory = 256 default_vcpus = 1 kernel_params = ""\n' +
      "count 1\nActor started\n",
  );
  const jsonLogs = (await cli.ok("logs", "--json", name)).trimEnd().split("\n").map((l) =>
    JSON.parse(l)
  );
  assertEquals(jsonLogs[2].labels["ate.dev/container_name"], "main");
  assertEquals(jsonLogs[2].labels["ate.dev/actor_id"], name);

  // Checkpoint: shipped, the VM and supervisor gone, the actor listed as checkpointed.
  const first = store(1);
  assertEquals(await cli.ok("checkpoint", name, "--to", first), `${first}\n`);
  [entry] = await ps(cli);
  assertEquals([entry.state, entry.pid, entry.memoryBytes], ["checkpointed", null, null]);
  assertEquals(entry.lineage.map((l) => l.uri), [first]);
  assertEquals(await processesMentioning(cli.stateDir), []);
  assertNoHostLeftovers(name);

  assertEquals(await cli.ok("rm", name), `${name}\n`);
  assertEquals(await ps(cli), []);

  // Restore from the store: the counter continues.
  assertEquals(await cli.ok("restore", name, "--from", first), `${name}\n`);
  assertStringIncludes(await cli.ok("logs", name), "Actor restoring\ncount 2\nActor restored\n");
  [entry] = await ps(cli);
  assertEquals(entry.state, "running");
  assertEquals(entry.lineage.map((l) => l.uri), [first]);

  // A running actor is not removed without --force.
  const refused = await cli.run("rm", name);
  assertEquals(refused.code, 1);
  assertEquals(
    refused.stderr,
    `ateom-microvm rm: actor ${name} is running: checkpoint it first, or stop it with 'rm --force ${name}'\n`,
  );

  // Second generation, restored under another name.
  const second = store(2);
  assertEquals(JSON.parse(await cli.ok("checkpoint", "--json", name, "--to", second)), {
    name,
    uri: second,
    files: ["config.json", "memory-ranges", "state.json"],
  });
  const other = `${name}-b`;
  assertEquals(await cli.ok("restore", name, "--as", other), `${other}\n`);
  assertStringIncludes(await cli.ok("logs", other), "count 3\n");
  const entries = await ps(cli);
  assertEquals(entries.map((e) => [e.name, e.state]), [[name, "checkpointed"], [other, "running"]]);
  assertEquals(entries[1].lineage.map((l) => l.uri), [first, second]);

  assertEquals(await cli.ok("rm", "--force", name, other), `${name}\n${other}\n`);
  assertEquals(await ps(cli), []);
  assertEquals(await processesMentioning(cli.stateDir), []);
  assertNoHostLeftovers(name);
  assertNoHostLeftovers(other);
  assertEquals(hostLinks().filter((l) => /^atsa/.test(l) && !before.has(l)), []);
}

let before = new Set<string>();

Deno.test("cli: run, ps, logs, checkpoint to file://, rm, restore (--as) with the fake worker", async () => {
  before = new Set(hostLinks());
  await withCli(WORKER_ENV, async (cli) => {
    const name = `fake-${Deno.pid}`;
    const snaps = join(cli.stateDir, "snaps");
    await lifecycle(cli, name, (n) => `file://${snaps}/gen${n}/`);
    const files = [...Deno.readDirSync(join(snaps, "gen1"))].map((e) => e.name).sort();
    assertEquals(files, [
      "config.json",
      "manifest.json",
      "memory-ranges.ates",
      "standalone.json",
      "state.json",
    ]);
  });
});

Deno.test("cli: the same through s3:// on a loopback S3 server", async () => {
  before = new Set(hostLinks());
  const s3 = await startS3Server();
  try {
    await withCli({
      ...WORKER_ENV,
      AWS_ENDPOINT_URL: s3.endpoint,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_REGION: "us-east-1",
    }, async (cli) => {
      await lifecycle(cli, `s3-${Deno.pid}`, (n) => `s3://${s3.bucket}/actors/gen${n}/`);
    });
  } finally {
    await s3.close();
  }
});

Deno.test("cli: checkpoint without --to goes to the state dir; restore finds the newest", async () => {
  await withCli(WORKER_ENV, async (cli) => {
    const name = `local-${Deno.pid}`;
    const work = join(cli.stateDir, "work");
    await Deno.mkdir(work);
    const bundle = await writeBundle(join(work, "bundle"), ["counter"]);
    await cli.ok("run", name, "--bundle", bundle, ...(await writeAssets(work)));
    const uri = (await cli.ok("checkpoint", name)).trim();
    assertMatch(uri, new RegExp(`^file://${cli.stateDir}/snapshots/${name}/\\d{8}T\\d{6}Z/$`));
    await cli.ok("rm", name);
    // The record is gone; restore finds the snapshot under the state dir.
    assertEquals(await cli.ok("restore", name), `${name}\n`);
    assertStringIncludes(await cli.ok("logs", name), "count 2\n");
  });
});

Deno.test("cli: a tampered snapshot is refused and leaves no actor behind", async () => {
  await withCli(WORKER_ENV, async (cli) => {
    const name = `tamper-${Deno.pid}`;
    const work = join(cli.stateDir, "work");
    await Deno.mkdir(work);
    const bundle = await writeBundle(join(work, "bundle"), ["counter"]);
    await cli.ok("run", name, "--bundle", bundle, ...(await writeAssets(work)));
    const snap = join(work, "snap");
    await cli.ok("checkpoint", name, "--to", `file://${snap}/`);
    await Deno.writeTextFile(join(snap, "state.json"), "{}");
    const r = await cli.run("restore", name, "--from", snap, "--as", `${name}-x`);
    assertEquals(r.code, 1);
    // Off a terminal, pull reports each file as plain lines before the one-line error.
    const lines = r.stderr.trimEnd().split("\n");
    assertMatch(lines[0], /^pull base-id|^pull config\.json \d+ B /);
    assertMatch(
      lines.at(-1)!,
      /^ateom-microvm restore: state\.json from file:\/\/\S+ does not match the manifest .*: the snapshot was modified or corrupted$/,
    );
    assertEquals((await ps(cli)).map((e) => e.name), [name]);
    assertNoHostLeftovers(`${name}-x`);
  });
});

Deno.test("cli: off a terminal, run and restore print the worker's rootfs build as plain lines", async () => {
  await withCli({ ...WORKER_ENV, FAKE_WORKER_ROOTFS: "1" }, async (cli) => {
    const name = `rootfs-${Deno.pid}`;
    const work = join(cli.stateDir, "work");
    await Deno.mkdir(work);
    const bundle = await writeBundle(join(work, "bundle"), ["counter"]);
    const run = await cli.run("run", name, "--bundle", bundle, ...(await writeAssets(work)));
    assertEquals([run.code, run.stdout], [0, `${name}\n`], run.stderr);
    // Each phase's lines, in order, as plain lines on stderr (the worker's own lines are not).
    const built = run.stderr.trimEnd().split("\n");
    assertEquals(built[0], "rootfs main: scanning source (0 entries)");
    assertMatch(built[1], /^rootfs main: scanning source \(\d+ entries\)$/);
    assertMatch(built[2], /^rootfs main: writing \d+(\.\d)? \S+ \/ \d+(\.\d)? \S+ \(\d+%\) /);
    assertMatch(built.at(-3)!, /^rootfs main: writing .* \(100%\) .* done$/);
    assertEquals(built.slice(-2), [
      "rootfs main: normalising metadata",
      "rootfs main: ready (built)",
    ]);
    assertEquals(built.filter((l) => !l.startsWith("rootfs main: ")), []);

    // Restore draws only its own build (the disk is already there), not run's lines again.
    await cli.ok("checkpoint", name, "--to", `file://${work}/snap/`);
    const restore = await cli.run("restore", name);
    assertEquals([restore.code, restore.stdout], [0, `${name}\n`], restore.stderr);
    const pulled = restore.stderr.trimEnd().split("\n").filter((l) => !l.startsWith("pull "));
    assertEquals(pulled.at(-1), "rootfs main: ready (existing)");
    assertEquals(pulled.filter((l) => l.includes("ready")).length, 1);
    assertEquals(pulled.filter((l) => l.includes("writing")), []);
  });
});

Deno.test("cli: a worker that cannot start is reported with its log, nothing left", async () => {
  await withCli({ ATEOM_MICROVM_WORKER: JSON.stringify(["/bin/false"]) }, async (cli) => {
    const name = `nostart-${Deno.pid}`;
    const work = join(cli.stateDir, "work");
    await Deno.mkdir(work);
    const bundle = await writeBundle(join(work, "bundle"), ["counter"]);
    const r = await cli.run("run", name, "--bundle", bundle, ...(await writeAssets(work)));
    assertEquals(r.code, 1);
    assertMatch(
      r.stderr,
      new RegExp(
        `^ateom-microvm run: the supervisor \\(worker\\) of ${name} exited \\(code 1\\) before serving`,
      ),
    );
    assertEquals(await ps(cli), []);
    assertNoHostLeftovers(name);
  });
});

Deno.test("cli: logs -f follows until the supervisor exits", async () => {
  await withCli(WORKER_ENV, async (cli) => {
    const name = `follow-${Deno.pid}`;
    const work = join(cli.stateDir, "work");
    await Deno.mkdir(work);
    const bundle = await writeBundle(join(work, "bundle"), ["counter"]);
    await cli.ok("run", name, "--bundle", bundle, ...(await writeAssets(work)));
    const follower = followLogs(cli, name);
    const reader = follower.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("Actor started\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assertEquals(seen, "Actor starting\ncount 1\nActor started\n");
    // The checkpoint stops the supervisor: the follower prints the last lines and exits 0.
    await cli.ok("checkpoint", name, "--to", `file://${work}/snap/`);
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assertEquals((await follower.status).code, 0);
    assertStringIncludes(seen, "Actor checkpointing\nActor checkpointed\n");
    await follower.stderr.cancel();
  });
});

Deno.test("cli: Ctrl-C during run cancels it, exit 130, nothing left", async () => {
  const fifoDir = await Deno.makeTempDir({ prefix: "cli-intr-" });
  const fifo = join(fifoDir, "blocked");
  const mk = await new Deno.Command("mkfifo", { args: ["-m", "600", fifo] }).output();
  assertEquals(mk.code, 0, "mkfifo");
  const env = { ...WORKER_ENV, FAKE_WORKER_BLOCK: "run", FAKE_WORKER_BLOCKED_FIFO: fifo };
  await withCli(env, async (cli) => {
    const name = `intr-${Deno.pid}`;
    const work = join(cli.stateDir, "work");
    await Deno.mkdir(work);
    const bundle = await writeBundle(join(work, "bundle"), ["counter"]);
    const child = new Deno.Command(BIN, {
      args: ["run", name, "--bundle", bundle, ...(await writeAssets(work))],
      env: cli.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // The worker writes to the FIFO once it is inside RunWorkload; if the CLI exits first, the
    // read is unblocked by opening the FIFO for writing here, and the test fails on its output.
    let reading = true;
    const exitedEarly = child.status.then(async () => {
      if (reading) await Deno.writeTextFile(fifo, "exited\n");
    });
    const signal = await Deno.readTextFile(fifo);
    reading = false;
    if (signal !== "blocked\n") {
      await exitedEarly;
      const out = await child.output();
      throw new Error(
        `run exited before RunWorkload blocked: ${new TextDecoder().decode(out.stderr)}`,
      );
    }
    child.kill("SIGINT");
    const out = await child.output();
    await exitedEarly;
    assertEquals(out.code, 130);
    assertEquals(
      new TextDecoder().decode(out.stderr),
      `ateom-microvm run: interrupted: RunWorkload was cancelled and everything it started is ` +
        `removed again\n`,
    );
    assertEquals(await ps(cli), []);
    assertEquals(await processesMentioning(cli.stateDir), []);
    assertNoHostLeftovers(name);
  });
  await Deno.remove(fifoDir, { recursive: true });
});

Deno.test("cli: a failed upload keeps the checkpoint; checkpoint again retries it", async () => {
  await withCli(WORKER_ENV, async (cli) => {
    const name = `retry-${Deno.pid}`;
    const work = join(cli.stateDir, "work");
    await Deno.mkdir(work);
    const bundle = await writeBundle(join(work, "bundle"), ["counter"]);
    await cli.ok("run", name, "--bundle", bundle, ...(await writeAssets(work)));
    const bad = await cli.run("checkpoint", name, "--to", "file:///proc/no-such-store/");
    assertEquals(bad.code, 1);
    assertMatch(
      bad.stderr.trimEnd().split("\n").at(-1)!,
      new RegExp(
        `^ateom-microvm checkpoint: checkpoint of ${name} was taken but not stored: .*; run ` +
          `'ateom-microvm checkpoint ${name} --to URI' again to retry the upload$`,
      ),
    );
    let [entry] = await ps(cli);
    assertEquals([entry.state, entry.pid], ["failed", null]);
    assertEquals(await processesMentioning(cli.stateDir), []);
    const good = `file://${work}/snap/`;
    assertEquals(await cli.ok("checkpoint", name, "--to", good), `${good}\n`);
    [entry] = await ps(cli);
    assertEquals(entry.state, "checkpointed");
    assertEquals(entry.lineage.map((l) => l.uri), [good]);
    await cli.ok("restore", name);
    assertStringIncludes(await cli.ok("logs", name), "count 2\n");
  });
});
