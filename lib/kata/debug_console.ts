/**
 * Diagnostics from inside the guest through kata's debug console (a root shell on vsock port
 * 1026, enabled by `withDebugConsole` in ./config.ts).
 *
 * The console is an interactive shell on a PTY, so it echoes each command line before running it.
 * The command is followed by an end marker written as `__ATEOM''_END__`: the echoed line keeps the
 * quotes (no match), the shell's output of it does not, so the marker is seen exactly once, after
 * the output. Best effort: failures come back as text, never as exceptions.
 *
 * @module
 */
import { DEBUG_CONSOLE_PORT } from "./config.ts";
import { dialHybridVsock } from "./hvsock.ts";

const END_MARKER = "__ATEOM_END__";
const END_COMMAND = "echo __ATEOM''_END__";

export interface DebugConsoleOptions {
  /** Limit for the whole dump (dial + output); default 8000 ms. */
  deadlineMs?: number;
  signal?: AbortSignal;
}

/**
 * Runs `command` (a shell line, e.g. `ip addr; ip route`) in the guest and returns its output
 * (stdout and stderr), or a line saying why it could not.
 */
export async function debugConsoleDump(
  vsockSocketPath: string,
  command: string,
  opts: DebugConsoleOptions = {},
): Promise<string> {
  const deadline = AbortSignal.timeout(opts.deadlineMs ?? 8000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  let conn: Deno.UnixConn;
  try {
    conn = await dialHybridVsock(vsockSocketPath, DEBUG_CONSOLE_PORT, {
      signal,
      deadlineMs: opts.deadlineMs ?? 8000,
    });
  } catch (err) {
    return `debug console unreachable: ${(err as Error).message}`;
  }
  const onAbort = () => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  signal.addEventListener("abort", onAbort, { once: true });
  const decoder = new TextDecoder();
  let text = "";
  try {
    await conn.write(new TextEncoder().encode(`{ ${command} ; } 2>&1; ${END_COMMAND}\n`));
    const buf = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n), { stream: true });
      const end = outputEnd(text);
      if (end >= 0) return withoutEcho(text.slice(0, end));
    }
    return withoutEcho(text) + "\n(debug console closed before the end marker)";
  } catch (err) {
    const why = signal.aborted ? "deadline passed or cancelled" : (err as Error).message;
    return withoutEcho(text) + `\n(debug console: ${why})`;
  } finally {
    signal.removeEventListener("abort", onAbort);
    onAbort();
  }
}

/** Index of the line holding the end marker (the shell's output of it), or -1. */
function outputEnd(text: string): number {
  const at = text.indexOf(END_MARKER);
  return at < 0 ? -1 : text.lastIndexOf("\n", at) + 1;
}

/** Drops the PTY's echo of our command line. */
function withoutEcho(text: string): string {
  return text.split("\n").filter((line) => !line.includes(END_COMMAND)).join("\n");
}
