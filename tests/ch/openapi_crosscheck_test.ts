/**
 * Cross-checks the CH double's request shapes (tests/doubles/ch/shapes.ts) against
 * cloud-hypervisor's OpenAPI description, when the reference copy is present (it is reference
 * data, not part of this repository): every field the double accepts exists in the spec with the
 * same type, enum values and default, and every field the spec requires is required. Fields the
 * server accepts but the spec omits are listed in `notInSpec`.
 *
 * The spec is looked up at $CH_OPENAPI_SPEC, then ../shared/reference/ beside the repository,
 * then /work/shared/reference/; without it the test prints that it skipped.
 */
import { parse } from "yaml";
import { assertEquals } from "../assert.ts";
import { ALL_SHAPES, type ObjectShape, type Shape } from "../doubles/ch/shapes.ts";

const SPEC_NAME = "cloud-hypervisor-openapi.yaml";
const repoRoot = new URL("../../", import.meta.url).pathname;

function findSpec(): string | undefined {
  const candidates = [
    Deno.env.get("CH_OPENAPI_SPEC"),
    `${repoRoot}../shared/reference/${SPEC_NAME}`,
    `/work/shared/reference/${SPEC_NAME}`,
  ];
  for (const path of candidates) {
    if (!path) continue;
    try {
      Deno.statSync(path);
      return path;
    } catch {
      // try the next
    }
  }
  return undefined;
}

type SpecSchema = {
  type?: string;
  $ref?: string;
  enum?: string[];
  default?: unknown;
  items?: SpecSchema;
  properties?: Record<string, SpecSchema>;
  required?: string[];
};

/** Mismatches between `shapes` and the spec's component schemas (empty when they agree). */
export function crossCheck(
  shapes: readonly ObjectShape[],
  schemas: Record<string, SpecSchema>,
): string[] {
  const problems: string[] = [];
  const resolve = (s: SpecSchema): [SpecSchema, string | undefined] => {
    if (!s.$ref) return [s, undefined];
    const name = s.$ref.replace("#/components/schemas/", "");
    return [schemas[name] ?? {}, name];
  };
  const compare = (ours: Shape, spec: SpecSchema, where: string) => {
    const [target, refName] = resolve(spec);
    if (ours.type === "object") {
      if (refName !== ours.name) {
        problems.push(
          `${where}: spec refers to ${refName ?? "an inline schema"}, the double uses ${ours.name}`,
        );
      }
      return;
    }
    const specType = target.type;
    if (ours.type !== specType) {
      problems.push(`${where}: the double says ${ours.type}, the spec ${specType ?? "(no type)"}`);
      return;
    }
    if (ours.type === "array") {
      compare(ours.items, target.items ?? {}, `${where}[]`);
      return;
    }
    if (ours.type === "string" && (ours.enum || target.enum)) {
      const a = [...(ours.enum ?? [])].sort();
      const b = [...(target.enum ?? [])].sort();
      if (JSON.stringify(a) !== JSON.stringify(b)) {
        problems.push(
          `${where}: enum ${JSON.stringify(a)} differs from the spec's ${JSON.stringify(b)}`,
        );
      }
    }
    const ourDefault = "default" in ours ? ours.default : undefined;
    if (ourDefault !== undefined && target.default !== undefined && ourDefault !== target.default) {
      problems.push(
        `${where}: default ${JSON.stringify(ourDefault)} differs from the spec's ${
          JSON.stringify(target.default)
        }`,
      );
    }
  };
  for (const shape of shapes) {
    const schema = schemas[shape.name];
    if (!schema) {
      problems.push(`${shape.name}: no such schema in the spec`);
      continue;
    }
    for (const [field, sub] of Object.entries(shape.properties)) {
      if (shape.notInSpec?.includes(field)) {
        if (schema.properties?.[field]) {
          problems.push(`${shape.name}.${field}: marked notInSpec but the spec has it`);
        }
        continue;
      }
      const specField = schema.properties?.[field];
      if (!specField) {
        problems.push(`${shape.name}.${field}: not in the spec`);
        continue;
      }
      compare(sub, specField, `${shape.name}.${field}`);
    }
    for (const field of schema.required ?? []) {
      if (!shape.required.includes(field)) {
        problems.push(`${shape.name}.${field}: required by the spec, optional in the double`);
      }
    }
  }
  return problems;
}

const specPath = findSpec();

Deno.test("ch openapi: the double's shapes agree with cloud-hypervisor's OpenAPI spec", () => {
  if (!specPath) {
    console.log(
      `SKIPPED: ${SPEC_NAME} not found (set CH_OPENAPI_SPEC to cross-check the CH double's shapes)`,
    );
    return;
  }
  const spec = parse(Deno.readTextFileSync(specPath));
  const schemas = spec.components.schemas as Record<string, SpecSchema>;
  assertEquals(crossCheck(ALL_SHAPES, schemas), []);
  console.log(`cross-checked ${ALL_SHAPES.length} shapes against ${specPath}`);
});

Deno.test("ch openapi: the cross-check catches wrong types, enums, unknown fields and optional required fields", () => {
  const schemas: Record<string, SpecSchema> = {
    Mode: { type: "string", enum: ["Copy", "OnDemand"] },
    Thing: {
      type: "object",
      required: ["a"],
      properties: {
        a: { type: "integer" },
        m: { $ref: "#/components/schemas/Mode" },
        d: { type: "boolean", default: true },
      },
    },
  };
  const wrong: ObjectShape = {
    type: "object",
    name: "Thing",
    properties: {
      a: { type: "string" },
      m: { type: "string", enum: ["copy", "OnDemand"] },
      d: { type: "boolean", default: false },
      extra: { type: "boolean" },
    },
    required: [],
  };
  assertEquals(crossCheck([wrong], schemas), [
    "Thing.a: the double says string, the spec integer",
    'Thing.m: enum ["OnDemand","copy"] differs from the spec\'s ["Copy","OnDemand"]',
    "Thing.d: default false differs from the spec's true",
    "Thing.extra: not in the spec",
    "Thing.a: required by the spec, optional in the double",
  ]);
});
