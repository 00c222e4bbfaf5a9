/**
 * The CreateSandbox request: one sandbox per guest, named after the actor, with the container
 * hostname and the pod's DNS. The agent writes each `dns` entry as one line of the guest's
 * /etc/resolv.conf, so entries are whole resolv.conf directives (`nameserver 10.0.0.10`).
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import {
  type CreateSandboxRequest,
  CreateSandboxRequestSchema,
} from "../../proto/gen/kata/agent_pb.ts";
import { validateContainerId } from "./specconv.ts";

const DIRECTIVES = new Set(["nameserver", "search", "domain", "options", "sortlist"]);

/** The directives of a resolv.conf text, one per entry (comments and blank lines dropped). */
export function resolvConfLines(text: string): string[] {
  return text.split("\n")
    .map((line) => line.replace(/[#;].*$/, "").trim().replace(/\s+/g, " "))
    .filter((line) => DIRECTIVES.has(line.split(" ")[0]));
}

export interface SandboxOptions {
  /** The sandbox id: the actor id. */
  sandboxId: string;
  hostname?: string;
  /** The pod's resolv.conf text, copied into the guest. */
  resolvConf?: string;
}

export function createSandboxRequest(opts: SandboxOptions): CreateSandboxRequest {
  validateContainerId(opts.sandboxId);
  return create(CreateSandboxRequestSchema, {
    sandboxId: opts.sandboxId,
    hostname: opts.hostname ?? "",
    dns: opts.resolvConf === undefined ? [] : resolvConfLines(opts.resolvConf),
  });
}
