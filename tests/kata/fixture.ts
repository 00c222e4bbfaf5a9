/**
 * What the kata tests share: the guest network the host side configures, a small ext4 disk for
 * the agent double to mount, sandbox + network setup through the agent client (asserting what the
 * agent answers), and reading whole lines from a container's output.
 *
 * @module
 */
import type { AgentClient } from "../../lib/kata/agent_client.ts";
import { gatewayNeighbor, guestInterface, guestRoutes } from "../../lib/kata/guestnet.ts";
import { createSandboxRequest } from "../../lib/kata/sandbox.ts";
import { assert, assertEquals } from "../assert.ts";

/** The guest side of the actor network (a /30 with the gateway at .1). */
export const NET = {
  guestCidr: "169.254.17.2/30",
  gateway: "169.254.17.1",
  guestMac: "02:a8:1e:00:00:02",
  gatewayMac: "02:a8:1e:00:00:01",
  mtu: 1500,
};

const decoder = new TextDecoder();

/** Makes `path` a 4 MiB empty ext4 filesystem (the agent double reads its superblock). */
export async function mkfsExt4(path: string): Promise<void> {
  await Deno.writeFile(path, new Uint8Array());
  await Deno.truncate(path, 4 << 20);
  const out = await new Deno.Command("mkfs.ext4", { args: ["-q", "-F", path], stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`mkfs.ext4 ${path}: ${decoder.decode(out.stderr)}`);
}

/** CreateSandbox `sandboxId`, then the interface, routes and gateway neighbour of {@link NET}. */
export async function setUpSandbox(agent: AgentClient, sandboxId: string): Promise<void> {
  await agent.createSandbox(
    createSandboxRequest({
      sandboxId,
      hostname: "actor",
      resolvConf: "# pod\nnameserver 10.96.0.10\nsearch svc.cluster.local\n",
    }),
  );
  const applied = await agent.updateInterface(guestInterface(NET));
  assertEquals(applied.hwAddr, NET.guestMac);
  const routes = await agent.updateRoutes(guestRoutes(NET));
  assertEquals(routes.map((r) => [r.dest, r.gateway]), [["169.254.17.0/30", ""], [
    "",
    "169.254.17.1",
  ]]);
  await agent.addArpNeighbors([gatewayNeighbor(NET)]);
}

/** Reads from an output iterator until `lines` complete lines arrived (or it ends). */
export async function readLines(
  it: AsyncIterator<Uint8Array>,
  lines: number,
): Promise<string[]> {
  let text = "";
  while (text.split("\n").length - 1 < lines) {
    const next = await it.next();
    if (next.done) break;
    assert(next.value.length > 0, "chunks are never empty");
    text += decoder.decode(next.value);
  }
  return text.split("\n").filter((l) => l !== "");
}
