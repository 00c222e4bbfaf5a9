/** What the standalone commands print: durations, tables, ps rows and log filtering. */
import { assertEquals } from "../../tests/assert.ts";
import { formatDuration, table } from "./output.ts";
import { renderLogLine } from "./logs.ts";
import { psEntry, psTable } from "./ps.ts";
import type { ActorRecord } from "./state.ts";

Deno.test("output: durations and tables", () => {
  assertEquals([0, 59, 61, 3725, 90061].map(formatDuration), ["0s", "59s", "1m1s", "1h2m", "1d1h"]);
  assertEquals(table(["A", "BB"], [["xxx", "y"], ["z", "w"]]), "A     BB\nxxx   y\nz     w");
});

const record: ActorRecord = {
  version: 1,
  name: "web",
  podUid: "web",
  actor: { namespace: "standalone", template: "web", id: "web" },
  state: "running",
  bundle: "/b",
  assets: { cloudHypervisor: "/ch", kernel: "/k", image: "/i" },
  ports: [{ host: 8080, guest: 80 }],
  slot: 0,
  supervisor: { pid: 123, startTicks: 9 },
  created: "2026-01-01T00:00:00.000Z",
  startedAt: "2026-01-01T00:00:00.000Z",
  lineage: [{ uri: "file:///s/1/", at: "2026-01-01T00:00:00.000Z", name: "web" }],
};

Deno.test("ps: entry and table", () => {
  const now = new Date("2026-01-01T01:02:03.000Z");
  const running = psEntry(record, "running", 64 << 20, now);
  assertEquals(running.address, "10.213.0.2");
  assertEquals(running.pid, 123);
  assertEquals(running.memoryBytes, 64 << 20);
  assertEquals(running.uptimeSeconds, 3723);
  const checkpointed = psEntry(
    { ...record, state: "checkpointed" },
    "checkpointed",
    undefined,
    now,
  );
  assertEquals([checkpointed.pid, checkpointed.memoryBytes, checkpointed.uptimeSeconds], [
    null,
    null,
    null,
  ]);
  assertEquals(
    psTable([running, checkpointed]),
    "NAME   STATE          PID   MEMORY     UPTIME   PORTS     SNAPSHOTS\n" +
      "web    running        123   64.0 MiB   1h2m     8080:80   1 (last file:///s/1/)\n" +
      "web    checkpointed   -     -          -        8080:80   1 (last file:///s/1/)",
  );
});

Deno.test("logs: actor lines shown, worker lines only with --all", () => {
  const actor =
    '{"labels":{"ate.dev/actor_id":"web","ate.dev/container_name":"main"},"message":"hello","time":"t"}';
  const merged =
    '{"labels":{"ate.dev/actor_id":"web"},"level":"info","msg":"json line","time":"t"}';
  const gce =
    '{"logging.googleapis.com/labels":{"ate.dev/actor_id":"web"},"message":"g","time":"t"}';
  const worker = '{"time":"t","level":"INFO","msg":"RPC started"}';
  assertEquals(renderLogLine(actor, {}), "hello");
  assertEquals(renderLogLine(merged, {}), '{"level":"info","msg":"json line"}');
  assertEquals(renderLogLine(gce, {}), "g");
  assertEquals(renderLogLine(worker, {}), undefined);
  assertEquals(renderLogLine(worker, { all: true }), worker);
  assertEquals(renderLogLine("panic: not json", { all: true }), "panic: not json");
  assertEquals(renderLogLine(actor, { json: true }), actor);
  assertEquals(renderLogLine("", { all: true }), undefined);
});
