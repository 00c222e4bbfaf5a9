/**
 * Standalone settings: file and state dir locations, every key, one-line errors, memory/vcpus/name
 * parsing.
 */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  configPath,
  type HostEnv,
  parseConfig,
  parseMemory,
  parseVcpus,
  stateDir,
  validateName,
} from "./config.ts";

const host = (uid: number, env: Record<string, string> = {}): HostEnv => ({
  uid,
  env: (k) => env[k],
});

Deno.test("config: file and state dir locations for root and users", () => {
  assertEquals(configPath(host(0)), "/etc/ateom-microvm/config.toml");
  assertEquals(
    configPath(host(1000, { HOME: "/home/u" })),
    "/home/u/.config/ateom-microvm/config.toml",
  );
  assertEquals(
    configPath(host(1000, { XDG_CONFIG_HOME: "/x/cfg" })),
    "/x/cfg/ateom-microvm/config.toml",
  );
  assertEquals(configPath(host(0, { ATEOM_MICROVM_CONFIG: "/c.toml" })), "/c.toml");
  assertEquals(stateDir({}, host(0)), "/var/lib/ateom-microvm");
  assertEquals(stateDir({}, host(1000, { HOME: "/home/u" })), "/home/u/.local/state/ateom-microvm");
  assertEquals(stateDir({}, host(1000, { XDG_STATE_HOME: "/s" })), "/s/ateom-microvm");
  assertEquals(stateDir({ stateDir: "/cfg/state" }, host(0)), "/cfg/state");
  assertEquals(
    stateDir({ stateDir: "/cfg/state" }, host(0, { ATEOM_MICROVM_STATE_DIR: "/env" })),
    "/env",
  );
});

Deno.test("config: parses every key", () => {
  assertEquals(
    parseConfig(
      `state_dir = "/s"\ncloud_hypervisor = "/ch"\nkernel = "/k"\nimage = "/i"\n` +
        `kata_config = "/kc"\nmemory = "2G"\nvcpus = 2\nsnapshots = "s3://b/p/"\n`,
      "c.toml",
    ),
    {
      stateDir: "/s",
      cloudHypervisor: "/ch",
      kernel: "/k",
      image: "/i",
      kataConfig: "/kc",
      memoryMiB: 2048,
      vcpus: 2,
      snapshots: "s3://b/p/",
    },
  );
  assertEquals(parseConfig("memory = 512\n", "c").memoryMiB, 512);
});

Deno.test("config: one-line errors name the key", () => {
  assertThrows(
    () => parseConfig("kernal = '/k'\n", "/etc/x.toml"),
    'config /etc/x.toml: unknown key "kernal"; known keys: state_dir, cloud_hypervisor, kernel',
  );
  assertThrows(
    () => parseConfig("vcpus = '2'\n", "c"),
    'config c: vcpus must be a whole number, got "2"',
  );
  assertThrows(
    () => parseConfig("kernel = 3\n", "c"),
    "config c: kernel must be a non-empty string",
  );
  assertThrows(
    () => parseConfig("memory = '1T'\n", "c"),
    'config c: memory: invalid memory size "1T"',
  );
  assertThrows(() => parseConfig("x = \n", "c"), "config c: invalid TOML (line 1");
});

Deno.test("config: memory, vcpus and names", () => {
  assertEquals([parseMemory("64"), parseMemory("512M"), parseMemory("1GiB"), parseMemory("2g")], [
    64,
    512,
    1024,
    2048,
  ]);
  assertThrows(() => parseMemory("63"), "too small");
  assertThrows(() => parseMemory("1.5G"), "invalid memory size");
  assertEquals(parseVcpus("4"), 4);
  assertThrows(() => parseVcpus("255"), "from 1 to 254");
  assertEquals(validateName("web-1"), "web-1");
  assertThrows(() => validateName("Web"), 'NAME "Web" is invalid');
  assertThrows(() => validateName("a".repeat(64)), "over the label limit of 63");
});
