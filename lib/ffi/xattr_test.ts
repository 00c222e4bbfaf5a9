/**
 * Extended attributes on a temp file and a symlink: set, list in order, get, no symlink following.
 */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { getXattr, listXattrs, setXattr } from "./xattr.ts";

const enc = new TextEncoder();

Deno.test("xattr: set, list in insertion order, get; symlinks are not followed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "xattr-" });
  try {
    const file = `${dir}/f`;
    await Deno.writeTextFile(file, "x");
    await Deno.symlink("f", `${dir}/link`);
    setXattr(file, "user.b", enc.encode("two"));
    setXattr(file, "user.a", new Uint8Array([0, 1, 255]));
    setXattr(file, "user.empty", new Uint8Array());
    assertEquals(listXattrs(file), ["user.b", "user.a", "user.empty"]);
    assertEquals(getXattr(file, "user.a"), new Uint8Array([0, 1, 255]));
    assertEquals(getXattr(file, "user.empty"), new Uint8Array());
    assertEquals(listXattrs(`${dir}/link`), []);
    assertThrows(() => getXattr(file, "user.missing"), /lgetxattr .*user.missing: .*errno 61/);
    assertThrows(() => listXattrs(`${dir}/nope`), /llistxattr .*nope: .*ENOENT/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
