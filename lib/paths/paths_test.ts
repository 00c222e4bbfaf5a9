/** The shared layout (upstream ateompath under a base path) and the id validation behind it. */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  ateomNetnsName,
  ateomNetnsPath,
  AteomPaths,
  DEFAULT_BASE_PATH,
  resolveBasePath,
  validateActorKey,
  validatePodUid,
} from "./paths.ts";
import { checkId, InvalidIdError } from "./validate.ts";

const key = { namespace: "default", template: "tmpl.v1", id: "act-1" };

Deno.test("paths follow upstream ateompath under the given base", () => {
  const p = new AteomPaths("/b");
  assertEquals(p.ateomDir("uid-1"), "/b/ateoms/uid-1");
  assertEquals(p.ateomSocket("uid-1"), "/b/ateoms/uid-1/ateom.sock");
  assertEquals(p.actorDir(key), "/b/actors/default:tmpl.v1:act-1");
  assertEquals(p.bundleDir(key, "web"), "/b/actors/default:tmpl.v1:act-1/bundles/web");
  assertEquals(p.checkpointStateDir(key), "/b/actors/default:tmpl.v1:act-1/checkpoint-state");
  assertEquals(p.restoreStateDir(key), "/b/actors/default:tmpl.v1:act-1/restore-state");
  assertEquals(p.identityDir(key), "/b/actors/default:tmpl.v1:act-1/identity");
  assertEquals(p.durableDirMountPoint(key, "v"), "/b/actors/default:tmpl.v1:act-1/durable-dir/v");
  assertEquals(ateomNetnsName("uid-1"), "ateom:uid-1");
  assertEquals(ateomNetnsPath("uid-1"), "/run/netns/ateom:uid-1");
});

Deno.test("base path: flag, then env, then upstream default; relative made absolute", () => {
  assertEquals(resolveBasePath("/x/", "/y"), "/x/");
  assertEquals(resolveBasePath(undefined, "/y"), "/y");
  assertEquals(resolveBasePath(undefined, ""), DEFAULT_BASE_PATH);
  assertEquals(resolveBasePath("rel", undefined), Deno.cwd() + "/rel");
});

Deno.test("ids: labels, subdomains and UUIDs pass", () => {
  assertEquals(validateActorKey(key), key);
  assertEquals(
    validatePodUid("123e4567-e89b-12d3-a456-426614174000"),
    "123e4567-e89b-12d3-a456-426614174000",
  );
  assertEquals(checkId("actor_id", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "label"), undefined);
  assertEquals(checkId("actor_id", "a".repeat(63), "label"), undefined);
});

Deno.test("ids: each unsafe form is rejected with a message naming field and reason", () => {
  const cases: [string, string][] = [
    ["", "actor_id is empty; use a DNS-1123 label"],
    ["a/b", 'actor_id "a/b" is invalid: it contains "/"; use a DNS-1123 label'],
    ["..", 'actor_id ".." is invalid: it contains ".."'],
    ["a\0b", 'actor_id "a\\u0000b" is invalid: it contains a NUL byte'],
    ["a".repeat(254), "is invalid: it is 254 characters long, over the limit of 253"],
    ["a".repeat(64), "is invalid: it is 64 characters long, over the label limit of 63"],
    ["Upper", 'actor_id "Upper" is invalid: it is not a DNS-1123 label'],
    ["a.b", 'actor_id "a.b" is invalid: it is not a DNS-1123 label'],
    ["-a", "it is not a DNS-1123 label"],
  ];
  for (const [value, want] of cases) {
    const got = checkId("actor_id", value, "label") ?? "(valid)";
    if (!got.includes(want)) {
      throw new Error(`checkId(${JSON.stringify(value)}) = ${got}; want ${want}`);
    }
  }
  assertEquals(checkId("actor_template_name", "a.b-c", "subdomain"), undefined);
  const long = {
    namespace: "n".repeat(63),
    template: ["a", "b", "c"].map((c) => c.repeat(63)).join("."),
    id: "i".repeat(63),
  };
  const err = assertThrows(() => validateActorKey(long), "over the 255-byte filename limit");
  assertEquals(err instanceof InvalidIdError, true);
  assertThrows(() => validatePodUid("../etc"), 'pod UID "../etc" is invalid: it contains "/"');
});
