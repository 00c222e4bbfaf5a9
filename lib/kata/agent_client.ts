/**
 * A client for the kata agent's `grpc.AgentService`, over one ttrpc connection.
 *
 * Every call is unary and typed by our generated protos (third_party/kata). A failed call rejects
 * with {@link AgentError}, which names the method and carries the ttrpc status code and message.
 * Calls may run concurrently on the one connection (the output reads block in the agent, so they
 * must share it with the control calls by stream id).
 *
 * Output: ReadStdout/ReadStderr return up to `len` (> 0) bytes and block while the process runs
 * without output; empty data marks the end. {@link AgentClient.output} turns that loop into an
 * async iterable of non-empty chunks that ends cleanly at the end of output, when the process or
 * container is gone (NOT_FOUND), when the connection closes, or when its signal aborts; any other
 * failure is thrown from the iterator.
 *
 * @module
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  AgentService,
  type CreateContainerRequest,
  type CreateSandboxRequestSchema,
} from "../../proto/gen/kata/agent_pb.ts";
import type { ARPNeighbor, Interface, Route } from "../../proto/gen/kata/types_pb.ts";
import { Code, TtrpcClient, TtrpcConnectionError, TtrpcError } from "../ttrpc/client.ts";
import { codeName } from "../ttrpc/status.ts";

/** The agent's ttrpc service name. */
export const AGENT_SERVICE = "grpc.AgentService";
/** Default bytes asked per ReadStdout/ReadStderr call. */
export const DEFAULT_READ_CHUNK = 32 * 1024;

/** Per-call options. */
export interface AgentCallOptions {
  signal?: AbortSignal;
  /** Deadline for this call in milliseconds (sent to the agent and enforced locally). */
  timeoutMs?: number;
}

/** A kata-agent call that failed: which method, the ttrpc status code and the agent's message. */
export class AgentError extends Error {
  readonly method: string;
  readonly code: number;
  readonly rpcMessage: string;

  constructor(method: string, code: number, rpcMessage: string, cause?: unknown) {
    super(`kata agent ${method}: ${codeName(code)}: ${rpcMessage}`, { cause });
    this.name = "AgentError";
    this.method = method;
    this.code = code;
    this.rpcMessage = rpcMessage;
  }
}

/**
 * The agent client. It owns the ttrpc client (and its connection) from construction on.
 *
 * @example
 * ```ts
 * const agent = await connectAgent(vsockSocketPath, { deadlineMs: 60_000 }); // ./connect.ts
 * await agent.createSandbox({ sandboxId: actorId, hostname });
 * for await (const chunk of agent.output(containerId, "stdout")) sink(chunk);
 * agent.close();
 * ```
 */
export class AgentClient {
  readonly #ttrpc: TtrpcClient;

  constructor(ttrpc: TtrpcClient) {
    this.#ttrpc = ttrpc;
  }

  /** Resolves when the connection is gone. */
  get closed(): Promise<void> {
    return this.#ttrpc.closed;
  }

  /** Closes the connection; in-flight calls fail and output iterables end. */
  close(): void {
    this.#ttrpc.close();
  }

  async #call<I extends DescMessage, O extends DescMessage>(
    method: { name: string; input: I; output: O },
    request: MessageInitShape<I>,
    opts: AgentCallOptions = {},
  ): Promise<MessageShape<O>> {
    const payload = toBinary(method.input, create(method.input, request));
    let reply: Uint8Array;
    try {
      reply = await this.#ttrpc.call(AGENT_SERVICE, method.name, payload, opts);
    } catch (err) {
      if (err instanceof TtrpcError) {
        throw new AgentError(method.name, err.code, err.rpcMessage, err);
      }
      throw new AgentError(method.name, Code.UNKNOWN, (err as Error).message ?? String(err), err);
    }
    try {
      return fromBinary(method.output, reply);
    } catch (err) {
      throw new AgentError(
        method.name,
        Code.INTERNAL,
        `undecodable reply: ${(err as Error).message}`,
        err,
      );
    }
  }

  /** Creates the (single) sandbox; before anything else. A restored guest answers ALREADY_EXISTS. */
  async createSandbox(
    request: MessageInitShape<typeof CreateSandboxRequestSchema>,
    opts?: AgentCallOptions,
  ): Promise<void> {
    await this.#call(AgentService.method.createSandbox, request, opts);
  }

  async destroySandbox(opts?: AgentCallOptions): Promise<void> {
    await this.#call(AgentService.method.destroySandbox, {}, opts);
  }

  /** Mounts the request's storages and parks the init process (see specconv.createContainerRequest). */
  async createContainer(request: CreateContainerRequest, opts?: AgentCallOptions): Promise<void> {
    await this.#call(AgentService.method.createContainer, request, opts);
  }

  async startContainer(containerId: string, opts?: AgentCallOptions): Promise<void> {
    await this.#call(AgentService.method.startContainer, { containerId }, opts);
  }

  /** Kills the container's processes and removes it; `timeoutSec` 0 waits forever. */
  async removeContainer(
    containerId: string,
    timeoutSec = 0,
    opts?: AgentCallOptions,
  ): Promise<void> {
    await this.#call(
      AgentService.method.removeContainer,
      { containerId, timeout: timeoutSec },
      opts,
    );
  }

  /** Sends `signal` to the process (`execId` "" = every process of the container). */
  async signalProcess(
    containerId: string,
    execId: string,
    signal: number,
    opts?: AgentCallOptions,
  ): Promise<void> {
    await this.#call(AgentService.method.signalProcess, { containerId, execId, signal }, opts);
  }

  /** Waits for the process to exit; returns its exit status. */
  async waitProcess(containerId: string, execId: string, opts?: AgentCallOptions): Promise<number> {
    const reply = await this.#call(AgentService.method.waitProcess, { containerId, execId }, opts);
    return reply.status;
  }

  /** Configures the guest NIC with `iface.hwAddr`; returns the interface as applied. */
  updateInterface(iface: Interface, opts?: AgentCallOptions): Promise<Interface> {
    return this.#call(AgentService.method.updateInterface, { interface: iface }, opts);
  }

  /** Replaces the guest's routes (in order: scope-link first); returns the resulting table. */
  async updateRoutes(routes: Route[], opts?: AgentCallOptions): Promise<Route[]> {
    const reply = await this.#call(
      AgentService.method.updateRoutes,
      { routes: { Routes: routes } },
      opts,
    );
    return reply.Routes;
  }

  async addArpNeighbors(neighbors: ARPNeighbor[], opts?: AgentCallOptions): Promise<void> {
    await this.#call(
      AgentService.method.addARPNeighbors,
      { neighbors: { ARPNeighbors: neighbors } },
      opts,
    );
  }

  /** Sets the guest clock (a restored guest's clock stands at snapshot time). */
  async setGuestDateTime(time: Date, opts?: AgentCallOptions): Promise<void> {
    const ms = time.getTime();
    const sec = Math.floor(ms / 1000);
    await this.#call(
      AgentService.method.setGuestDateTime,
      { Sec: BigInt(sec), Usec: BigInt(Math.round((ms - sec * 1000) * 1000)) },
      opts,
    );
  }

  /** One ReadStdout call: up to `len` (> 0) bytes; empty at the end of output. */
  readStdout(
    containerId: string,
    execId: string,
    len = DEFAULT_READ_CHUNK,
    opts?: AgentCallOptions,
  ): Promise<Uint8Array> {
    return this.#read("stdout", containerId, execId, len, opts);
  }

  /** One ReadStderr call: up to `len` (> 0) bytes; empty at the end of output. */
  readStderr(
    containerId: string,
    execId: string,
    len = DEFAULT_READ_CHUNK,
    opts?: AgentCallOptions,
  ): Promise<Uint8Array> {
    return this.#read("stderr", containerId, execId, len, opts);
  }

  async #read(
    stream: "stdout" | "stderr",
    containerId: string,
    execId: string,
    len: number,
    opts?: AgentCallOptions,
  ): Promise<Uint8Array> {
    const method = stream === "stdout"
      ? AgentService.method.readStdout
      : AgentService.method.readStderr;
    if (!Number.isInteger(len) || len <= 0 || len > 0xffff_ffff) {
      throw new RangeError(`kata agent ${method.name}: len must be a positive uint32, got ${len}`);
    }
    const reply = await this.#call(method, { containerId, execId, len }, opts);
    return reply.data;
  }

  /**
   * The process's stdout or stderr as non-empty chunks, read in a loop until the end of output,
   * the process or container disappearing, the connection closing, or `signal` aborting (all end
   * the iteration without error). `execId` defaults to the container id.
   *
   * ttrpc has no way to cancel a call in the agent: after an abort, the agent's pending read
   * still takes the next output, which is then lost. Abort only when done with the stream for
   * good; closing the client ends every stream without that loss.
   */
  async *output(
    containerId: string,
    stream: "stdout" | "stderr",
    opts: { execId?: string; chunkSize?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const execId = opts.execId ?? containerId;
    const chunk = opts.chunkSize ?? DEFAULT_READ_CHUNK;
    const read = stream === "stdout"
      ? () => this.readStdout(containerId, execId, chunk, { signal: opts.signal })
      : () => this.readStderr(containerId, execId, chunk, { signal: opts.signal });
    while (!opts.signal?.aborted) {
      let data: Uint8Array;
      try {
        data = await read();
      } catch (err) {
        if (isEndOfStream(err, opts.signal)) return;
        throw err;
      }
      if (data.length === 0) return;
      yield data;
    }
  }
}

function isEndOfStream(err: unknown, signal?: AbortSignal): boolean {
  if (!(err instanceof AgentError)) return false;
  if (err.cause instanceof TtrpcConnectionError) return true;
  if (err.code === Code.NOT_FOUND) return true;
  return err.code === Code.CANCELLED && signal?.aborted === true;
}
