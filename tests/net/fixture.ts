/**
 * Network namespaces for the actor network tests: a fake pod netns whose `eth0` is a veth to a
 * "client" netns (pod 10.99.7.2/24, client 10.99.7.1/24), and an interior netns
 * `ateom:test-<pid>-<random>-<n>`. Names are unique per process, module and fixture; all is removed
 * afterwards, also when the test fails: actor network cleanup first (deleting the taps wakes
 * blocked tap readers), then the readers are awaited, the fds closed and the netns deleted.
 *
 * @module
 */
import { closeFd } from "../../lib/ffi/libc.ts";
import {
  type ActorNetworkEnv,
  type ActorNetworkSetup,
  cleanupActorNetwork,
  ensureInteriorNetns,
} from "../../lib/net/actor.ts";
import { GUEST_MAC } from "../../lib/net/plan.ts";
import { ProcessRunner, runChecked } from "../../lib/net/runner.ts";
import { TapGuest } from "./tap_guest.ts";

export const POD_IP = "10.99.7.2";
export const CLIENT_IP = "10.99.7.1";

// Deno.pid alone is not unique: `deno test --parallel` runs several test modules in one process.
const instance = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
let counter = 0;

export interface Fixture {
  /** Pod netns name (fake: holds eth0 with POD_IP). */
  pod: string;
  /** Client netns name, on the other end of the pod's eth0. */
  client: string;
  /** Interior netns name, `ateom:test-...`. */
  interior: string;
  /** The env the code under test gets; its runner records every invocation. */
  env: ActorNetworkEnv & { runner: ProcessRunner };
  /** Runs a checked command (not counted in env.runner). */
  sh(...argv: string[]): Promise<string>;
  /** Parses JSON printed by a checked command. */
  // deno-lint-ignore no-explicit-any
  json(...argv: string[]): Promise<any>;
  /** Registers a setup's tap fds so the fixture closes them at the end. */
  track(setup: ActorNetworkSetup): ActorNetworkSetup;
  /** A TapGuest on `fd`, awaited at the end. */
  guest(fd: number): TapGuest;
  /** Registers a child process to kill at the end. */
  spawned(proc: Proc): Proc;
}

export interface FixtureOptions {
  /** Give the pod's eth0 its IPv4 address (default true). */
  podAddress?: boolean;
  /** Create the interior netns (default true). */
  interior?: boolean;
}

/** Runs `fn` with fresh namespaces and removes all of them afterwards. */
export async function withFixture(
  fn: (fx: Fixture) => Promise<void>,
  options: FixtureOptions = {},
): Promise<void> {
  const id = `${Deno.pid}-${instance}-${++counter}`;
  const tools = new ProcessRunner();
  const sh = (...argv: string[]) => runChecked(tools, argv);
  const fds: number[] = [];
  const guests: TapGuest[] = [];
  const children: Proc[] = [];
  const fx: Fixture = {
    pod: `ateom-test-pod-${id}`,
    client: `ateom-test-cli-${id}`,
    interior: `ateom:test-${id}`,
    env: {
      interiorNetns: `ateom:test-${id}`,
      podNetns: `ateom-test-pod-${id}`,
      runner: new ProcessRunner({ record: true }),
    },
    sh,
    json: async (...argv) => JSON.parse(await sh(...argv)),
    track: (setup) => {
      fds.push(...setup.tapFds);
      return setup;
    },
    guest: (fd) => {
      const g = new TapGuest(fd, GUEST_MAC, "169.254.17.2");
      guests.push(g);
      return g;
    },
    spawned: (child) => {
      children.push(child);
      return child;
    },
  };
  const created: string[] = [];
  try {
    for (const ns of [fx.pod, fx.client]) {
      await sh("ip", "netns", "add", ns);
      created.push(ns);
    }
    await sh(
      "ip",
      "-n",
      fx.pod,
      "link",
      "add",
      "name",
      "eth0",
      "type",
      "veth",
      "peer",
      "name",
      "cl0",
      "netns",
      fx.client,
    );
    if (options.podAddress ?? true) {
      await sh("ip", "-n", fx.pod, "addr", "add", `${POD_IP}/24`, "dev", "eth0");
    }
    await sh("ip", "-n", fx.client, "addr", "add", `${CLIENT_IP}/24`, "dev", "cl0");
    for (const [ns, dev] of [[fx.pod, "eth0"], [fx.pod, "lo"], [fx.client, "cl0"]]) {
      await sh("ip", "-n", ns, "link", "set", "dev", dev, "up");
    }
    if (options.interior ?? true) {
      created.push(fx.interior);
      await ensureInteriorNetns(fx.interior, tools);
    }
    await fn(fx);
  } finally {
    for (const child of children) {
      child.kill();
      await child.done;
    }
    await cleanupActorNetwork({ ...fx.env, runner: tools }).catch(() => {});
    await Promise.all(guests.map((g) => g.stopped));
    for (const fd of fds) closeFd(fd);
    for (const ns of created) await tools.run(["ip", "netns", "delete", ns]);
  }
}

/** A child process whose stdout is read line by line and whose stderr is collected. */
export class Proc {
  private lines: string[] = [];
  private waiting: ((line: string | undefined) => void) | undefined;
  private ended = false;
  stderr = "";
  /** Resolves with the exit code once the process exited and both streams are drained. */
  readonly done: Promise<number>;

  constructor(readonly child: Deno.ChildProcess) {
    this.done = Promise.all([this.readStdout(), this.readStderr(), child.status]).then(
      ([, , status]) => status.code,
    );
  }

  private async readStdout(): Promise<void> {
    let buffer = "";
    for await (const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let i;
      while ((i = buffer.indexOf("\n")) >= 0) {
        this.push(buffer.slice(0, i));
        buffer = buffer.slice(i + 1);
      }
    }
    if (buffer) this.push(buffer);
    this.ended = true;
    this.waiting?.(undefined);
  }

  private async readStderr(): Promise<void> {
    for await (const chunk of this.child.stderr.pipeThrough(new TextDecoderStream())) {
      this.stderr += chunk;
    }
  }

  private push(line: string): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w(line);
    } else {
      this.lines.push(line);
    }
  }

  /** The next stdout line, or undefined at the end of output. */
  nextLine(): Promise<string | undefined> {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift());
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiting = resolve);
  }

  /** All remaining stdout lines after the process ends, and its exit code. */
  async rest(): Promise<{ code: number; stdout: string }> {
    const code = await this.done;
    const stdout = this.lines.join("\n");
    this.lines = [];
    return { code, stdout };
  }

  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // already exited
    }
  }
}

/** Starts `argv` inside netns `ns` (via `ip netns exec`, no shell). */
export function spawnIn(fx: Fixture, ns: string, argv: string[]): Proc {
  return fx.spawned(
    new Proc(
      new Deno.Command("ip", {
        args: ["netns", "exec", ns, ...argv],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        cwd: "/",
      }).spawn(),
    ),
  );
}

/** Starts a Deno script inside netns `ns`. */
export function denoIn(fx: Fixture, ns: string, code: string): Proc {
  return spawnIn(fx, ns, [Deno.execPath(), "eval", "--no-config", code]);
}
