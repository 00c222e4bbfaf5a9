/** The startup check of the network tools: each missing tool named with its Debian package. */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { checkNetworkTools, missingNetworkTools } from "./tools.ts";

Deno.test("tools: the check names each missing tool and its Debian package", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const tool of ["ip", "tc"]) {
      await Deno.writeTextFile(`${dir}/${tool}`, "");
      await Deno.chmod(`${dir}/${tool}`, 0o755);
    }
    await Deno.writeTextFile(`${dir}/nft`, ""); // present but not executable
    assertEquals(missingNetworkTools(dir), [{ tool: "nft", debianPackage: "nftables" }]);
    assertThrows(
      () => checkNetworkTools(dir),
      "actor networking needs nft, not found on PATH: install the Debian package nftables",
    );
    assertThrows(
      () => checkNetworkTools(""),
      "needs ip, tc, nft, not found on PATH: install the Debian packages iproute2 nftables",
    );
    checkNetworkTools(`/nonexistent:${dir}:/usr/sbin:/sbin:/usr/bin`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
