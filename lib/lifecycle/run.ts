/**
 * The steps of RunWorkload: boots a fresh VM for the request's containers, from the runtime
 * assets and the kata config, up to started containers behind a connected kata agent.
 *
 * Contract: {@link bootRun} runs inside `MicroVmRuntime`'s common frame (lib/lifecycle/
 * runtime.ts), which owns the step timing, the unwind stack, log forwarding, readiness and
 * supervision; every step here that creates something registers its undo on `undo`.
 *
 * @module
 */
import type { RunRequest } from "../api/runtime.ts";
import type { AgentClient } from "../kata/agent_client.ts";
import { readKataConfig, withAgentDebug, withDebugConsole } from "../kata/config.ts";
import { debugConsoleDump } from "../kata/debug_console.ts";
import { gatewayNeighbor, guestInterface, guestRoutes } from "../kata/guestnet.ts";
import {
  createContainerRequest,
  guestBlockDevice,
  type OciSpec,
  shapeBundleConfig,
} from "../kata/specconv.ts";
import type { Logger } from "../log/logger.ts";
import { closeTapFds } from "../net/actor.ts";
import {
  ACTOR_IP,
  ACTOR_MTU,
  ACTOR_PREFIX,
  GATEWAY_IP,
  GUEST_MAC,
  HOST_VETH_MAC,
} from "../net/plan.ts";
import { ateomNetnsPath } from "../paths/paths.ts";
import type { Assets } from "./assets.ts";
import { agentContainerId, type VmDir } from "./layout.ts";
import type { Booted, RuntimeContext, Steps } from "./steps.ts";
import type { Unwind } from "./unwind.ts";
import { buildVmConfig } from "./vm_config.ts";

/** The resolv.conf lines the agent writes into the guest (`CreateSandbox.dns`). */
export function dnsLines(resolvConf: string): string[] {
  return resolvConf.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
}

/**
 * RunWorkload's boot: assets, kata config, VM run directory, container specs, rootfs disks,
 * network, VMM, persisted activation, VM create/boot, agent, sandbox, guest network, containers.
 */
export async function bootRun(
  rt: RuntimeContext,
  req: RunRequest,
  steps: Steps,
  undo: Unwind,
  log: Logger,
  signal: AbortSignal,
): Promise<Booted> {
  const assets = await steps.run("resolving runtime assets", () => rt.assets(req, true));
  const guest = await steps.run("reading the kata config", () => guestConfig(rt, assets));
  const vm = await steps.run("preparing the VM run directory", () => rt.vmDir(undo));
  const containers = await steps.run("shaping container specs", () => shapeSpecs(rt, req));
  const resolvConf = rt.opts.resolvConf ?? "/etc/resolv.conf";
  await steps.run("building rootfs disks", () => rt.buildDisks(req, log, signal));
  const net = await steps.run("setting up the actor network", () => rt.setupNet(undo, 1));
  const vmm = await steps.run(
    "launching cloud-hypervisor",
    () => rt.launch(assets, vm, undo, req.actor.id, signal),
  );
  const state = await steps.run(
    "recording the activation",
    () => rt.record(req, vm, vmm, undo, { baseId: req.actor.id, atCheckpoint: "none" }),
  );
  const call = { signal, timeoutMs: rt.opts.vmmCallTimeoutMs };
  await steps.run(
    "creating the VM",
    () => vmm.client.create(guest.config(vm, state.containers.map((c) => c.disk)), call),
  );
  await steps.run("adding the network device", async () => {
    try {
      await vmm.client.addNet({ mac: GUEST_MAC }, net.tapFds, call);
    } finally {
      closeTapFds(net.tapFds.splice(0));
    }
  });
  await steps.run("booting the VM", () => vmm.client.boot(call));
  const agent = await steps.run(
    "dialing the kata agent",
    () => rt.dialAgent(vm, undo, signal, log),
  );
  await steps.run("creating the sandbox", async () =>
    agent.createSandbox({
      sandboxId: req.actor.id,
      hostname: containers[0].spec.hostname ?? "",
      dns: dnsLines(await Deno.readTextFile(resolvConf).catch(() => "")),
    }, { signal }));
  await steps.run("configuring the guest network", () => guestNetwork(rt, agent, signal, vm));
  for (const [i, c] of containers.entries()) {
    await steps.run(`starting container ${c.name}`, async () => {
      await agent.createContainer(
        createContainerRequest({
          containerId: c.agentId,
          spec: c.spec,
          rootfsDevice: guestBlockDevice(i + 1),
        }),
        { signal },
      );
      await agent.startContainer(c.agentId, { signal });
    });
  }
  return {
    act: { state, client: vmm.client, vmm, agent },
    vm,
    outcome: { vmm_pid: vmm.pid, ch_version: vmm.version.version },
  };
}

async function guestConfig(rt: RuntimeContext, assets: Assets) {
  const kata = await readKataConfig(assets.kataConfig);
  let params = withDebugConsole(kata.kernelParams);
  if (rt.opts.kataDebug) params = withAgentDebug(params);
  return {
    kata,
    config: (vm: VmDir, disks: string[]) =>
      buildVmConfig({
        kernel: assets.kernel,
        image: assets.image,
        disks,
        kernelParams: params,
        memoryMiB: kata.memoryMiB,
        vcpus: kata.vcpus,
        serialLog: vm.serialLog,
        vsockSocket: vm.vsockSocket,
      }),
  };
}

async function shapeSpecs(
  rt: RuntimeContext,
  req: RunRequest,
): Promise<{ name: string; agentId: string; spec: OciSpec }[]> {
  const out = [];
  for (const c of req.containers) {
    const agentId = agentContainerId(c.name);
    const spec = await shapeBundleConfig(c.bundleDir, {
      containerId: agentId,
      netnsPath: ateomNetnsPath(rt.opts.worker.podUid),
    });
    out.push({ name: c.name, agentId, spec });
  }
  return out;
}

async function guestNetwork(
  rt: RuntimeContext,
  agent: AgentClient,
  signal: AbortSignal,
  vm: VmDir,
): Promise<void> {
  const values = {
    guestCidr: `${ACTOR_IP}/${ACTOR_PREFIX}`,
    gateway: GATEWAY_IP,
    guestMac: GUEST_MAC,
    gatewayMac: HOST_VETH_MAC,
    mtu: ACTOR_MTU,
  };
  try {
    await agent.updateInterface(guestInterface(values), { signal });
    await agent.updateRoutes(guestRoutes(values), { signal });
    await agent.addArpNeighbors([gatewayNeighbor(values)], { signal });
  } catch (e) {
    const dump = await debugConsoleDump(vm.vsockSocket, "ip addr; ip route; ip neigh", {
      deadlineMs: 3000,
    });
    rt.log.error("guest network configuration failed; guest dump", { dump });
    throw e;
  }
}
