/**
 * Startup check for the network tools the actor network runs: `ip` and `tc` (Debian package
 * iproute2) and `nft` (nftables). Looks them up on PATH without spawning anything.
 *
 * @module
 */

/** Each tool and the Debian package that ships it. */
export const NETWORK_TOOLS: Readonly<Record<string, string>> = {
  ip: "iproute2",
  tc: "iproute2",
  nft: "nftables",
};

/** A tool missing from PATH and the package to install. */
export interface MissingTool {
  tool: string;
  debianPackage: string;
}

/** The tools of {@link NETWORK_TOOLS} not found as executables on `path` (default: $PATH). */
export function missingNetworkTools(path = Deno.env.get("PATH") ?? ""): MissingTool[] {
  const dirs = path.split(":").filter((d) => d);
  return Object.entries(NETWORK_TOOLS)
    .filter(([tool]) => !dirs.some((dir) => isExecutable(`${dir}/${tool}`)))
    .map(([tool, debianPackage]) => ({ tool, debianPackage }));
}

/**
 * Throws a one-line error naming every missing tool and the Debian packages to install.
 *
 * @example
 * ```ts
 * checkNetworkTools(); // at worker startup, before the first activation
 * ```
 */
export function checkNetworkTools(path?: string): void {
  const missing = missingNetworkTools(path);
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map((m) => m.debianPackage))];
  throw new Error(
    `actor networking needs ${missing.map((m) => m.tool).join(", ")}, not found on PATH: ` +
      `install the Debian package${packages.length > 1 ? "s" : ""} ${packages.join(" ")}`,
  );
}

function isExecutable(file: string): boolean {
  try {
    const st = Deno.statSync(file);
    return st.isFile && st.mode !== null && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}
