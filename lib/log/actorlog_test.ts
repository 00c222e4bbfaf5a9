/**
 * Actor-log envelopes as upstream writes them: wrapping and merging lines, labels, Go's JSON
 * escaping, line splitting.
 */
import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import { type ActorLabels, actorLogWriter, LineSplitter } from "./actorlog.ts";
import { jsonLogger } from "./logger.ts";
import { encodeGoJson, parseGoJson } from "./gojson.ts";

const labels: ActorLabels = {
  actorId: "act-1",
  actorTemplateName: "tmpl-1",
  actorTemplateNamespace: "default",
};
const T = "2026-05-16T01:03:37.5Z";
const now = () => new Date("2026-05-16T01:03:37.500Z");
const L = `"ate.dev/actor_id":"act-1","ate.dev/actor_template_name":"tmpl-1",` +
  `"ate.dev/actor_template_namespace":"default"`;

function capture(onGce = false) {
  const out: string[] = [];
  const w = actorLogWriter((t) => out.push(t), labels, { onGce, now });
  return { w, out };
}

Deno.test("actorlog: a plain line is wrapped with time, message and labels", () => {
  const { w, out } = capture();
  w.line("ctr-1", "Test application log output");
  assertEquals(out, [
    `{"labels":{${L},"ate.dev/container_name":"ctr-1"},"message":"Test application log output","time":"${T}"}\n`,
  ]);
});

Deno.test("actorlog: a JSON line is merged, keeping its time and big integers exactly", () => {
  const { w, out } = capture();
  w.line(
    "ctr-1",
    `{"level":"info","msg":"Started container","custom_attr":"value","trace_id":1234567890123456789,"time":"2026-05-16T01:03:37Z"}`,
  );
  assertEquals(out, [
    `{"custom_attr":"value","labels":{${L},"ate.dev/container_name":"ctr-1"},"level":"info",` +
    `"msg":"Started container","time":"2026-05-16T01:03:37Z","trace_id":1234567890123456789}\n`,
  ]);
});

Deno.test("actorlog: existing labels are merged and ours win on collision", () => {
  const { w, out } = capture();
  w.line("ctr-1", `{"msg":"x","labels":{"ate.dev/actor_id":"malicious-id","app":"my-app"}}`);
  assertEquals(out, [
    `{"labels":{"app":"my-app",${L},"ate.dev/container_name":"ctr-1"},"msg":"x","time":"${T}"}\n`,
  ]);
});

Deno.test("actorlog: non-object JSON, trailing garbage and null are wrapped verbatim", () => {
  const { w, out } = capture();
  for (const line of [`{"count": 1} garbage`, `[1,2]`, `42`, `null`, `{"a":`]) {
    out.length = 0;
    w.line("c", line);
    assertEquals(JSON.parse(out[0]).message, line);
  }
});

Deno.test("actorlog: GCE labels key, lifecycle events without container name", () => {
  const { w, out } = capture(true);
  w.event("Actor started");
  w.line("c", `{"msg":"m","labels":"not-a-map"}`);
  assertEquals(
    out[0],
    `{"logging.googleapis.com/labels":{${L}},"message":"Actor started","time":"${T}"}\n`,
  );
  assertEquals(
    out[1],
    `{"labels":"not-a-map","logging.googleapis.com/labels":{${L},"ate.dev/container_name":"c"},"msg":"m","time":"${T}"}\n`,
  );
});

Deno.test("actorlog: strings are escaped as Go's json.Marshal does", () => {
  const { w, out } = capture();
  w.line("c", "<a href='x'>&\u2028\x01\t\"\\");
  assertEquals(
    JSON.parse(out[0]).message,
    "<a href='x'>&\u2028\x01\t\"\\",
  );
  assert(
    out[0].includes(`"message":"\\u003ca href='x'\\u003e\\u0026\\u2028\\u0001\\t\\"\\\\"`),
    out[0],
  );
});

Deno.test("gojson: round trip keeps number literals and sorts keys", () => {
  const src = ` {"b":[1.50,-0e+3,{"z":true,"a":null}],"a":"\\u00e9\\/"} `;
  assertEquals(encodeGoJson(parseGoJson(src)!), `{"a":"é/","b":[1.50,-0e+3,{"a":null,"z":true}]}`);
  for (const bad of ["", "{", "01", "1.", "{'a':1}", '{"a":1,}', "tru", '"\x01"', "{} {}"]) {
    assertEquals(parseGoJson(bad), undefined, `parseGoJson(${JSON.stringify(bad)})`);
  }
});

Deno.test("splitter: lines split across chunks, CR kept, final partial line on close", () => {
  const enc = new TextEncoder();
  const got: string[] = [];
  const s = new LineSplitter((l) => got.push(new TextDecoder().decode(l)));
  for (const chunk of ["he", "llo\nwor", "ld\r\n\n", "tail"]) s.push(enc.encode(chunk));
  assertEquals(got, ["hello", "world\r", ""]);
  s.close();
  assertEquals(got, ["hello", "world\r", "", "tail"]);
  const long: string[] = [];
  const t = new LineSplitter((l) => long.push(new TextDecoder().decode(l)), 4);
  t.push(enc.encode("abcdefghij\nxy"));
  t.close();
  assertEquals(long, ["abcd", "efgh", "ij", "xy"]);
});

Deno.test("actorlog and logger share one sink: concurrent writers never interleave", async () => {
  const written: string[] = [];
  const sink = (text: string) => written.push(text);
  const logger = jsonLogger(sink, "DEBUG");
  const enc = new TextEncoder();
  const writers = Array.from(
    { length: 8 },
    (_, i) => actorLogWriter(sink, { ...labels, actorId: `a${i}` }, { now }),
  );
  async function* chunks(i: number): AsyncIterable<Uint8Array> {
    const text =
      Array.from({ length: 50 }, (_, j) => j % 2 ? `{"n":${j},"w":${i}}` : `plain ${i} ${j}`)
        .join("\n") + "\n";
    // Odd-sized chunks so lines straddle chunk boundaries; yield between chunks.
    for (let off = 0; off < text.length; off += 7) {
      await Promise.resolve();
      yield enc.encode(text.slice(off, off + 7));
    }
  }
  const logging = (async () => {
    for (let j = 0; j < 100; j++) {
      await Promise.resolve();
      logger.info("worker line", { j });
    }
  })();
  await Promise.all([...writers.map((w, i) => w.pipe(`c${i}`, chunks(i))), logging]);
  const lines = written.join("").split("\n");
  assertEquals(lines.pop(), "");
  assertEquals(lines.length, 8 * 50 + 100);
  const perWriter = new Map<string, number>();
  for (const line of lines) {
    const rec = JSON.parse(line);
    if (rec.msg === "worker line") continue;
    const id = rec.labels["ate.dev/actor_id"];
    assertEquals(rec.labels["ate.dev/container_name"], `c${id.slice(1)}`);
    if (rec.message) assertMatch(rec.message, new RegExp(`^plain ${id.slice(1)} \\d+$`));
    else assertEquals(rec.w, Number(id.slice(1)));
    perWriter.set(id, (perWriter.get(id) ?? 0) + 1);
  }
  assertEquals([...perWriter.values()], Array(8).fill(50));
});
