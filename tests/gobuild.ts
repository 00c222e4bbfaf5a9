/**
 * Builds the Go test peers under tests/go/<name>/ with Debian's Go toolchain and Go sources
 * (golang-go, golang-*-dev under /usr/share/gocode/src), offline.
 *
 * Debian ships library sources in a GOPATH tree without go.mod files, so the build runs in GOPATH
 * mode (GO111MODULE=off, GOPATH=/usr/share/gocode) and needs no network and no module proxy.
 * Binaries are cached in tests/go/.build/ (gitignored) under a hash of the sources and the Go
 * version, so a peer is rebuilt only when it changes. Concurrent builders are safe: each writes
 * a temporary file and renames it into place.
 *
 * @module
 */

const GO_DIR = new URL("./go/", import.meta.url).pathname;
const BUILD_DIR = `${GO_DIR}.build`;
const DEBIAN_GOPATH = "/usr/share/gocode";

/** Returns the path of the built peer `name`, building it first when the cache lacks it. */
export async function buildGoPeer(name: string): Promise<string> {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`go peer name ${JSON.stringify(name)} invalid`);
  const sourceDir = `${GO_DIR}${name}`;
  const goVersion = await run(["go", "version"], GO_DIR);
  const hash = await sourceHash(sourceDir, goVersion);
  const binary = `${BUILD_DIR}/${name}-${hash}`;
  try {
    await Deno.stat(binary);
    return binary;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await Deno.mkdir(BUILD_DIR, { recursive: true });
  const temporary = `${binary}.tmp-${Deno.pid}`;
  try {
    await run(["go", "build", "-o", temporary, "."], sourceDir, {
      GO111MODULE: "off",
      GOPATH: DEBIAN_GOPATH,
      GOCACHE: `${BUILD_DIR}/gocache`,
      GOFLAGS: "",
      CGO_ENABLED: "0",
    });
    await Deno.rename(temporary, binary);
  } finally {
    await Deno.remove(temporary).catch(() => {});
  }
  await removeStaleBuilds(name, binary);
  return binary;
}

/** Removes binaries of earlier sources of `name` (other processes' temporaries are kept). */
async function removeStaleBuilds(name: string, current: string): Promise<void> {
  const stale = new RegExp(`^${name}-[0-9a-f]{16}$`);
  for await (const entry of Deno.readDir(BUILD_DIR)) {
    const path = `${BUILD_DIR}/${entry.name}`;
    if (stale.test(entry.name) && path !== current) await Deno.remove(path).catch(() => {});
  }
}

async function sourceHash(dir: string, goVersion: string): Promise<string> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
  names.sort();
  const parts: Uint8Array[] = [new TextEncoder().encode(goVersion)];
  for (const name of names) {
    parts.push(new TextEncoder().encode(`\0${name}\0`), await Deno.readFile(`${dir}/${name}`));
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function run(argv: string[], cwd: string, env?: Record<string, string>): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(argv[0], { args: argv.slice(1), cwd, env }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `${argv[0]} not found: install golang-go and golang-github-containerd-ttrpc-dev ` +
          "(the apt line in .ci/run)",
      );
    }
    throw e;
  }
  const text = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `${argv.join(" ")} in ${cwd} failed (exit ${output.code}): ` +
        text.decode(output.stderr).trim(),
    );
  }
  return text.decode(output.stdout).trim();
}
