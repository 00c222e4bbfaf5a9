/**
 * kata configuration.toml reading (sizes, kernel_params, defaults, one-line errors) and the kernel
 * cmdline helpers.
 */
import { parseKataConfig, readKataConfig, withAgentDebug, withDebugConsole } from "./config.ts";
import { assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";

/** Shaped like kata's configuration-clh.toml: other sections and keys must be ignored. */
const KATA_CLH = `
[hypervisor.clh]
path = "/opt/kata/bin/cloud-hypervisor"
kernel = "/opt/kata/share/kata-containers/vmlinux.container"
image = "/opt/kata/share/kata-containers/kata-containers.img"
kernel_params = " agent.log=info systemd.log_level=warning "
default_vcpus = 2
default_maxvcpus = 0
default_memory = 4096
enable_debug = false

[agent.kata]
debug_console_enabled = false
dial_timeout = 45

[runtime]
internetworking_model = "tcfilter"
`;

Deno.test("parseKataConfig reads [hypervisor.clh] sizes and kernel_params", () => {
  assertEquals(parseKataConfig(KATA_CLH), {
    memoryMiB: 4096,
    vcpus: 2,
    kernelParams: "agent.log=info systemd.log_level=warning",
  });
});

Deno.test("parseKataConfig: absent or non-positive sizes fall back to 2048 MiB / 1 vCPU", () => {
  assertEquals(parseKataConfig(""), { memoryMiB: 2048, vcpus: 1, kernelParams: "" });
  assertEquals(
    parseKataConfig("[hypervisor.clh]\ndefault_vcpus = -1\ndefault_memory = 0\n"),
    { memoryMiB: 2048, vcpus: 1, kernelParams: "" },
  );
  assertEquals(parseKataConfig("[hypervisor.qemu]\ndefault_memory = 512\n").memoryMiB, 2048);
});

Deno.test("parseKataConfig: invalid TOML or types fail with one line naming the key", () => {
  assertThrows(() => parseKataConfig("[hypervisor.clh\n"), /invalid TOML \(line 1/);
  assertThrows(
    () => parseKataConfig('[hypervisor.clh]\ndefault_memory = "4G"\n'),
    "default_memory must be an integer",
  );
  assertThrows(
    () => parseKataConfig("[hypervisor.clh]\nkernel_params = 3\n"),
    "kernel_params must be a string",
  );
});

Deno.test("readKataConfig: no path means defaults; a missing file is an error naming it", async () => {
  assertEquals((await readKataConfig(undefined)).vcpus, 1);
  await assertRejects(() => readKataConfig("/nonexistent/kata.toml"), "/nonexistent/kata.toml");
  const path = await Deno.makeTempFile({ suffix: ".toml" });
  try {
    await Deno.writeTextFile(path, KATA_CLH);
    assertEquals((await readKataConfig(path)).memoryMiB, 4096);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("withDebugConsole adds the console and its vport once", () => {
  const once = withDebugConsole("agent.log=info");
  assertEquals(once, "agent.log=info agent.debug_console agent.debug_console_vport=1026");
  assertEquals(withDebugConsole(once), once);
  assertEquals(withDebugConsole(""), "agent.debug_console agent.debug_console_vport=1026");
  assertEquals(
    withDebugConsole("agent.debug_console_vport=2000"),
    "agent.debug_console_vport=2000 agent.debug_console",
  );
});

Deno.test("withAgentDebug sets agent.log=debug in place, once", () => {
  assertEquals(withAgentDebug("quiet agent.log=info panic=1"), "quiet agent.log=debug panic=1");
  assertEquals(withAgentDebug(""), "agent.log=debug");
  const both = withAgentDebug(withDebugConsole("panic=1"));
  assertEquals(both, "panic=1 agent.debug_console agent.debug_console_vport=1026 agent.log=debug");
  assertEquals(withAgentDebug(withDebugConsole(both)), both);
});
