/**
 * The standalone CLI end to end with the real worker (`serve` with the micro-VM runtime) driving
 * the strict cloud-hypervisor double and its kata-agent double guest: run → ps → logs →
 * checkpoint → rm → restore → the counter continues → checkpoint → restore --as another actor →
 * it continues again; through file:// and through s3:// on a loopback S3 server. Each actor gets
 * its own pod netns from the CLI; afterwards no VMM, supervisor or netns is left.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { startS3Server } from "../s3_server.ts";
import { withFixture } from "../net/fixture.ts";
import {
  assertNoHostLeftovers,
  BIN,
  type Cli,
  netnsNames,
  processesMentioning,
  ROOT,
  waitForLog,
  withCli,
  writeAssets,
  writeBundle,
} from "./cli.ts";

const DOUBLES = {
  CH_DOUBLE_GUEST: join(ROOT, "tests/doubles/kata/agent_guest.ts"),
  CH_DOUBLE_VERSION: "54",
};
const CH_DOUBLE = join(ROOT, "tests/doubles/cloud-hypervisor");

type PsEntry = { name: string; state: string; pid: number | null; memoryBytes: number | null };

async function flow(cli: Cli, name: string, store: (n: number) => string) {
  const work = join(cli.stateDir, "work");
  await Deno.mkdir(work);
  const bundle = await writeBundle(join(work, "bundle"), ["counter"]);
  const assets = await writeAssets(work, CH_DOUBLE);

  const run = await cli.run(
    "run",
    name,
    "--bundle",
    bundle,
    ...assets,
    "--memory",
    "128M",
    "--vcpus",
    "2",
  );
  assertEquals([run.code, run.stdout], [0, `${name}\n`], run.stderr);
  // The worker's rootfs build, drawn by the CLI as plain lines (stderr is not a terminal).
  assertStringIncludes(
    run.stderr,
    "rootfs main: normalising metadata\nrootfs main: ready (built)\n",
  );
  const [running] = JSON.parse(await cli.ok("ps", "--json")) as PsEntry[];
  assertEquals(running.state, "running");
  assert(running.memoryBytes !== null && running.memoryBytes > 0, "VMM resident memory");
  const first = await waitForLog(cli, name, "count 1");
  assertEquals(first.split("\n").slice(0, 2), ["Actor starting", "Actor started"]);

  const uri1 = store(1);
  assertEquals(await cli.ok("checkpoint", name, "--to", uri1), `${uri1}\n`);
  assertEquals(await processesMentioning(`ateom-pod:${name}`), [], "supervisor left");
  assertNoHostLeftovers(name);
  await cli.ok("rm", name);

  assertEquals(await cli.ok("restore", name, "--from", uri1), `${name}\n`);
  const restored = await waitForLog(cli, name, "count 2");
  assertStringIncludes(restored, "Actor restoring\nActor restored\n");

  const uri2 = store(2);
  await cli.ok("checkpoint", name, "--to", uri2);
  const other = `${name}-b`;
  assertEquals(await cli.ok("restore", name, "--from", uri2, "--as", other), `${other}\n`);
  await waitForLog(cli, other, "count 3");
  const entries = JSON.parse(await cli.ok("ps", "--json")) as (PsEntry & {
    lineage: { uri: string }[];
  })[];
  assertEquals(entries.map((e) => [e.name, e.state]), [[name, "checkpointed"], [other, "running"]]);
  assertEquals(entries[1].lineage.map((l) => l.uri), [uri1, uri2]);

  await cli.ok("rm", "--force", name, other);
  assertEquals(await processesMentioning(cli.stateDir), [], "VMM or supervisor left");
  assertNoHostLeftovers(name);
  assertNoHostLeftovers(other);
}

Deno.test("e2e: run → checkpoint file:// → rm → restore → --as, the counter continues", async () => {
  await withCli(DOUBLES, async (cli) => {
    const snaps = join(cli.stateDir, "snaps");
    await flow(cli, `e2e-${Deno.pid}`, (n) => `file://${snaps}/gen${n}/`);
    // --memory/--vcpus reached the VM through the kata config override.
    const vm = JSON.parse(await Deno.readTextFile(join(snaps, "gen1", "config.json")));
    assertEquals([vm.memory.size, vm.cpus.boot_vcpus], [128 * 1024 * 1024, 2]);
  });
});

Deno.test("e2e: with cloud-hypervisor v52 (OnDemand restores whose checkpoint merges the delta)", async () => {
  await withCli({ ...DOUBLES, CH_DOUBLE_VERSION: "52" }, async (cli) => {
    const snaps = join(cli.stateDir, "snaps");
    await flow(cli, `e2e52-${Deno.pid}`, (n) => `file://${snaps}/gen${n}/`);
  });
});

Deno.test("e2e: the same through s3:// on a loopback S3 server", async () => {
  const s3 = await startS3Server();
  try {
    await withCli({
      ...DOUBLES,
      AWS_ENDPOINT_URL: s3.endpoint,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_REGION: "us-east-1",
    }, async (cli) => {
      await flow(cli, `e2e-s3-${Deno.pid}`, (n) => `s3://${s3.bucket}/e2e/gen${n}/`);
    });
  } finally {
    await s3.close();
  }
});

Deno.test("e2e: ATEOM_MICROVM_NETWORK=none, the CLI inside an existing pod netns", async () => {
  await withFixture(async (fx) => {
    await withCli({ ...DOUBLES, ATEOM_MICROVM_NETWORK: "none" }, async (cli) => {
      const name = `inpod-${Deno.pid}`;
      const work = join(cli.stateDir, "work");
      await Deno.mkdir(work);
      const bundle = await writeBundle(join(work, "bundle"), ["counter"]);
      const assets = await writeAssets(work, CH_DOUBLE);
      // The CLI runs in the pod's netns (as in a container); the worker inherits it.
      const inPod = (...args: string[]) =>
        new Deno.Command("ip", {
          args: ["netns", "exec", fx.pod, BIN, ...args],
          env: cli.env,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
      const run = await inPod("run", name, "--bundle", bundle, ...assets);
      assertEquals(run.code, 0, new TextDecoder().decode(run.stderr));
      await waitForLog(cli, name, "count 1");
      // The worker built the actor network in the pod netns, not in a netns of its own.
      assertEquals(netnsNames().includes(`ateom-pod:${name}`), false);
      const podLinks = await fx.sh("ip", "-n", fx.pod, "-o", "link", "show");
      assertStringIncludes(podLinks, "ateom0");
      const snap = `file://${work}/snap/`;
      assertEquals((await inPod("checkpoint", name, "--to", snap)).code, 0);
      assertEquals((await inPod("restore", name)).code, 0);
      await waitForLog(cli, name, "count 2");
      assertEquals((await inPod("rm", "--force", name)).code, 0);
      assertEquals(await processesMentioning(cli.stateDir), []);
      assert(!(await fx.sh("ip", "-n", fx.pod, "-o", "link", "show")).includes("ateom0"));
      // rm also removed the worker's interior netns (named after the actor).
      assertNoHostLeftovers(name);
    });
  });
});
