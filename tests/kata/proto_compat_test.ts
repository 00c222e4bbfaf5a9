/**
 * Cross-checks third_party/kata against kata-containers' own protos at the version README.md
 * names, read from a local mirror of the kata repository when one is present (reference data,
 * never committed; the test says it skipped otherwise). Every message, enum and RPC we define must
 * match kata's: field names, numbers, types, labels, oneofs; enum values; RPC input/output types.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { type DescriptorProto, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { assert, assertEquals } from "../assert.ts";

const MIRROR = Deno.env.get("KATA_MIRROR") ??
  "/work/.mirror/kata-containers+kata-containers/repo";
const KATA_TAG = "3.31.0";
const KATA_FILES = ["agent", "types", "oci", "csi"];
const BUF = new URL("../../node_modules/.bin/buf", import.meta.url).pathname;
const ROOT = new URL("../..", import.meta.url).pathname;

async function run(cmd: string, args: string[], cwd?: string): Promise<Uint8Array | null> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  return out.success ? out.stdout : null;
}

async function descriptorSet(moduleDir: string, out: string): Promise<Map<string, string>> {
  const built = await new Deno.Command(BUF, {
    args: ["build", moduleDir, "-o", out],
    cwd: ROOT,
    stderr: "piped",
  }).output();
  if (!built.success) {
    throw new Error(`buf build ${moduleDir}: ${new TextDecoder().decode(built.stderr)}`);
  }
  const set = fromBinary(FileDescriptorSetSchema, await Deno.readFile(out));
  const shapes = new Map<string, string>();
  for (const file of set.file) {
    if (file.name.startsWith("google/")) continue;
    const walk = (prefix: string, messages: DescriptorProto[]) => {
      for (const m of messages) {
        const name = `${prefix}.${m.name}`;
        const fields = m.field
          .map((f) => [f.name, f.number, f.type, f.label, f.typeName, f.oneofIndex ?? -1])
          .sort((a, b) => (a[1] as number) - (b[1] as number));
        shapes.set(name, JSON.stringify({ fields, oneofs: m.oneofDecl.map((o) => o.name) }));
        walk(name, m.nestedType);
      }
    };
    walk(`.${file.package}`, file.messageType);
    for (const e of file.enumType) {
      shapes.set(
        `.${file.package}.${e.name}`,
        JSON.stringify(e.value.map((v) => [v.name, v.number])),
      );
    }
    for (const s of file.service) {
      for (const m of s.method) {
        shapes.set(`${file.package}.${s.name}/${m.name}`, `${m.inputType} -> ${m.outputType}`);
      }
    }
  }
  return shapes;
}

const mirrorHasTag = await Deno.stat(MIRROR).then(
  () =>
    run("git", ["-C", MIRROR, "rev-parse", "--verify", `${KATA_TAG}^{commit}`]).then((o) =>
      o !== null
    ),
  () => false,
);
if (!mirrorHasTag) {
  console.log(
    `proto_compat_test: skipped: no kata-containers mirror with tag ${KATA_TAG} at ${MIRROR}`,
  );
}

Deno.test({
  name: `third_party/kata matches kata-containers ${KATA_TAG} protos (names, numbers, types)`,
  ignore: !mirrorHasTag,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kata-protos-" });
    try {
      await Deno.mkdir(`${dir}/kata`);
      for (const name of KATA_FILES) {
        const text = await run("git", [
          "-C",
          MIRROR,
          "show",
          `${KATA_TAG}:src/libs/protocols/protos/${name}.proto`,
        ]);
        assert(text !== null, `reading ${name}.proto from the mirror`);
        await Deno.writeFile(`${dir}/kata/${name}.proto`, text);
      }
      await Deno.writeTextFile(`${dir}/kata/buf.yaml`, "version: v2\n");
      const kata = await descriptorSet(`${dir}/kata`, `${dir}/kata.binpb`);
      const ours = await descriptorSet("third_party", `${dir}/ours.binpb`);
      const differing = [...ours].filter(([name, shape]) => kata.get(name) !== shape)
        .map(([name, shape]) => `${name}\n  ours: ${shape}\n  kata: ${kata.get(name)}`);
      assertEquals(differing, []);
      assert(ours.size > 70, `compared ${ours.size} definitions`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
