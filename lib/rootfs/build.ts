/**
 * Builds the actor's raw ext4 rootfs disk from a bundle rootfs directory, reproducibly and
 * robustly.
 *
 * Contract of {@link buildImage}:
 *   - The image bytes are a function of the tree's contents (see lib/rootfs/tree.ts), the guest
 *     resolv.conf bytes and the e2fsprogs version: same inputs, same sha256, on any machine.
 *     The UUID, hash seed and fixed time come from the metadata (everything but file bytes), so
 *     mkfs starts while the file bytes are still being hashed; the full key (metadata and bytes)
 *     tags the finished image.
 *   - The image is built into a fresh temp file in the destination directory, fixed up with
 *     debugfs, optionally checked with `e2fsck -fn`, tagged with its key (xattr
 *     {@link KEY_XATTR}) and renamed into place: `out` is either the old file or a complete image.
 *   - When `out` already holds the image for the same key (and has not been written since), the
 *     build is skipped.
 *   - The build does not belong to the caller: `signal` only stops the caller waiting; mkfs runs
 *     to the end, and a retry (or a concurrent request) for the same output and key joins the
 *     build in flight instead of starting another.
 *   - On failure nothing is left: the temp file and the scratch directory are removed.
 *   - The tree must not change while it is built (mkfs and the hash read it at different times).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, resolve } from "node:path";
import { getXattr, setXattr } from "../ffi/xattr.ts";
import {
  debugfsErrors,
  fixupScript,
  type Geometry,
  geometryOf,
  idsOf,
  mkfsArgs,
  parseUsedInodes,
  type ResolvConf,
  timesScript,
  toolEnv,
} from "./ext4.ts";
import { hashTree, metadataHash, reasonOf, scanTree, type Tree } from "./tree.ts";

/** xattr on a finished image: `<key> <size> <mtime ms>` of the build that wrote it. */
export const KEY_XATTR = "user.ateom.rootfs-key";

/** Version of the recipe; part of every image key, so changing the recipe rebuilds images. */
const RECIPE = "ateom-rootfs-image-v1";

/** Paths of the e2fsprogs programs; each defaults to the one in /usr/sbin, /sbin or PATH. */
export interface Tools {
  mkfs: string;
  debugfs: string;
  dumpe2fs: string;
  e2fsck: string;
}

/** Where a build is. `done`/`total` are bytes (scan: entries). */
export interface BuildProgress {
  phase: "scan" | "mkfs" | "fixup" | "verify";
  done: number;
  total: number;
}

export interface BuildOptions {
  /** Host file whose bytes become /etc/resolv.conf in the image (the bundle is not touched). */
  resolvConf?: string;
  /** Stops this caller waiting; never stops the build. */
  signal?: AbortSignal;
  onProgress?: (progress: BuildProgress) => void;
  /** Run `e2fsck -fn` on the image before it is renamed into place. */
  verify?: boolean;
  tools?: Partial<Tools>;
}

/** The image at `image`, its key, and how this call got it. */
export interface BuildResult {
  image: string;
  /** sha256 over the recipe, tree hash, resolv.conf and e2fsprogs version. */
  key: string;
  treeHash: string;
  geometry: Geometry;
  /** built: this call ran mkfs; joined: it waited for a build in flight; existing: skipped. */
  outcome: "built" | "joined" | "existing";
}

interface Prepared {
  tree: Tree;
  /** Key of everything but file bytes: fixes UUID, hash seed and fake time. */
  layoutKey: string;
  geometry: Geometry;
  resolvConf?: ResolvConf;
  /**
   * The full key, once the file bytes are hashed. Hashing starts on the first call (the build
   * calls it right after spawning mkfs); every later call shares it.
   */
  full: () => Promise<{ treeHash: string; key: string }>;
}

interface InFlight<T> {
  promise: Promise<T>;
  listeners: Set<(p: BuildProgress) => void>;
}

const preparing = new Map<string, InFlight<Prepared>>();
const building = new Map<string, InFlight<BuildResult>>();

/** How many times this process has run mkfs (tests check that concurrent builds share one). */
export const buildStats = { mkfsRuns: 0 };

function resolveTool(name: string): string {
  for (const dir of ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch { /* try the next */ }
  }
  return name;
}

function toolsOf(opts: BuildOptions): Tools {
  return {
    mkfs: opts.tools?.mkfs ?? resolveTool("mkfs.ext4"),
    debugfs: opts.tools?.debugfs ?? resolveTool("debugfs"),
    dumpe2fs: opts.tools?.dumpe2fs ?? resolveTool("dumpe2fs"),
    e2fsck: opts.tools?.e2fsck ?? resolveTool("e2fsck"),
  };
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  program: string,
  args: string[],
  env: Record<string, string>,
  onSpawn?: () => void,
): Promise<RunResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
  } catch (e) {
    throw new Error(`cannot run ${program}: ${(e as Error).message}; install e2fsprogs`);
  }
  onSpawn?.();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function firstLines(text: string, n = 3): string {
  return text.trim().split("\n").slice(0, n).join(" / ");
}

const versions = new Map<string, Promise<string>>();

/** The `mkfs.ext4 -V` banner (part of the key: other versions write other bytes). */
function mkfsVersion(mkfs: string): Promise<string> {
  let v = versions.get(mkfs);
  if (!v) {
    v = run(mkfs, ["-V"], { LC_ALL: "C" }).then((r) => firstLines(r.stderr + r.stdout, 1));
    versions.set(mkfs, v);
  }
  return v;
}

async function prepare(src: string, opts: BuildOptions, emit: (p: BuildProgress) => void) {
  emit({ phase: "scan", done: 0, total: 0 });
  const tree = await scanTree(src);
  emit({ phase: "scan", done: tree.entries.length, total: tree.entries.length });
  let resolvConf: ResolvConf | undefined;
  if (opts.resolvConf !== undefined) {
    try {
      resolvConf = { bytes: await Deno.readFile(opts.resolvConf) };
    } catch (e) {
      throw new Error(`cannot read guest resolv.conf ${opts.resolvConf}: ${(e as Error).message}`);
    }
  }
  const version = await mkfsVersion(toolsOf(opts).mkfs);
  const resolvHash = resolvConf ? createHash("sha256").update(resolvConf.bytes).digest("hex") : "-";
  const keyOf = (label: string, treeDigest: string) =>
    createHash("sha256").update(`${RECIPE}\n${label}\n${version}\n${treeDigest}\n${resolvHash}\n`)
      .digest("hex");
  let hashing: Promise<{ treeHash: string; key: string }> | undefined;
  const full = () => {
    if (!hashing) {
      hashing = hashTree(tree).then((treeHash) => ({ treeHash, key: keyOf("full", treeHash) }));
      hashing.catch(() => {}); // awaited by every caller that needs it
    }
    return hashing;
  };
  return {
    tree,
    layoutKey: keyOf("layout", metadataHash(tree)),
    geometry: geometryOf(tree),
    resolvConf,
    full,
  };
}

/** The key recorded on `image`, if it is a finished image not written since its build. */
export async function recordedKey(image: string): Promise<string | undefined> {
  try {
    const info = await Deno.stat(image);
    const [key, size, mtime] = new TextDecoder().decode(getXattr(image, KEY_XATTR)).split(" ");
    if (Number(size) !== info.size || Number(mtime) !== info.mtime?.getTime()) return undefined;
    return key;
  } catch {
    return undefined;
  }
}

async function removeStaleTemps(dir: string, base: string) {
  const prefix = `.${base}.building-`;
  try {
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.name.startsWith(prefix)) continue;
      const pid = Number(entry.name.slice(prefix.length).split("-")[0]);
      const alive = pid === Deno.pid || (() => {
        try {
          Deno.statSync(`/proc/${pid}`);
          return true;
        } catch {
          return false;
        }
      })();
      if (!alive) await Deno.remove(`${dir}/${entry.name}`).catch(() => {});
    }
  } catch { /* the directory is checked when the temp file is created */ }
}

let tempCounter = 0;

async function runBuild(
  src: string,
  out: string,
  prep: Prepared,
  tools: Tools,
  verify: boolean,
  emit: (p: BuildProgress) => void,
): Promise<BuildResult> {
  const dir = dirname(out);
  await removeStaleTemps(dir, basename(out));
  const tmp = `${dir}/.${basename(out)}.building-${Deno.pid}-${++tempCounter}`;
  const scratch = await Deno.makeTempDir({ prefix: "ateom-mkfs-" });
  const env = toolEnv(prep.tree.maxMtime);
  const fail = (what: string, r: RunResult) =>
    new Error(`${what} failed for ${src} (exit ${r.code}): ${firstLines(r.stderr || r.stdout)}`);
  try {
    try {
      using f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
      await f.truncate(prep.geometry.sizeBytes);
    } catch (e) {
      throw new Error(`cannot create the image in ${dir}: ${reasonOf(e)}; check the directory`);
    }

    const root = prep.tree.entries[0];
    const { uuid, hashSeed } = idsOf(prep.layoutKey);
    const args = mkfsArgs({
      src,
      image: tmp,
      geometry: prep.geometry,
      uuid,
      hashSeed,
      rootUid: root.uid,
      rootGid: root.gid,
    });
    const total = prep.tree.contentBlocksBytes;
    emit({ phase: "mkfs", done: 0, total });
    const poll = setInterval(() => {
      Deno.stat(tmp).then(
        (s) => emit({ phase: "mkfs", done: Math.min((s.blocks ?? 0) * 512, total), total }),
        () => {},
      );
    }, 250);
    buildStats.mkfsRuns++;
    let r: RunResult;
    try {
      // Hash the file bytes while mkfs copies them (both read the same, now cached, pages).
      r = await run(tools.mkfs, args, env, () => void prep.full());
    } finally {
      clearInterval(poll);
    }
    if (r.code !== 0) {
      // An unreadable entry fails mkfs and the hash alike; the hash names it more clearly.
      const hashError = await prep.full().then(() => undefined, (e: Error) => e);
      throw hashError ?? fail("mkfs.ext4", r);
    }
    emit({ phase: "mkfs", done: total, total });

    emit({ phase: "fixup", done: 0, total: 1 });
    const dump = await run(tools.dumpe2fs, [tmp], env);
    if (dump.code !== 0) throw fail("dumpe2fs", dump);
    const fix = fixupScript({
      tree: prep.tree,
      fakeTime: prep.tree.maxMtime,
      dir: scratch,
      resolvConf: prep.resolvConf,
    });
    for (const file of fix.files) await Deno.writeFile(file.name, file.bytes);
    const script = timesScript(parseUsedInodes(dump.stdout), prep.tree.maxMtime) + fix.script;
    await debugfsBatch(tools.debugfs, tmp, `${scratch}/fixup.cmd`, script, env, src);
    emit({ phase: "fixup", done: 1, total: 1 });

    if (verify) {
      emit({ phase: "verify", done: 0, total: 1 });
      const check = await run(tools.e2fsck, ["-fn", tmp], env);
      if (check.code !== 0) throw fail("e2fsck -fn", check);
      emit({ phase: "verify", done: 1, total: 1 });
    }

    const { treeHash, key } = await prep.full();
    const info = await Deno.stat(tmp);
    setXattr(
      tmp,
      KEY_XATTR,
      new TextEncoder().encode(`${key} ${info.size} ${info.mtime?.getTime()}`),
    );
    await Deno.rename(tmp, out);
    return { image: out, key, treeHash, geometry: prep.geometry, outcome: "built" };
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

async function debugfsBatch(
  debugfs: string,
  image: string,
  scriptPath: string,
  script: string,
  env: Record<string, string>,
  src: string,
) {
  await Deno.writeTextFile(scriptPath, script);
  const r = await run(debugfs, ["-w", "-f", scriptPath, image], env);
  const errors = debugfsErrors(r.stderr);
  if (r.code !== 0 || errors.length > 0) {
    throw new Error(
      `debugfs fixup failed for ${src} (exit ${r.code}): ${errors.slice(0, 3).join(" / ")}`,
    );
  }
}

/**
 * The in-flight operation under `key`, started with `start` if there is none. `listener` is
 * attached before `start` runs, so it sees the first progress event too.
 */
function track<T>(
  map: Map<string, InFlight<T>>,
  key: string,
  start: (emit: (p: BuildProgress) => void) => Promise<T>,
  listener?: (p: BuildProgress) => void,
): { entry: InFlight<T>; started: boolean } {
  const existing = map.get(key);
  if (existing) return { entry: existing, started: false };
  const listeners = new Set<(p: BuildProgress) => void>(listener ? [listener] : []);
  const emit = (p: BuildProgress) => {
    for (const l of listeners) {
      try {
        l(p);
      } catch { /* a listener's failure is its own */ }
    }
  };
  const promise = start(emit).finally(() => map.delete(key));
  // The build outlives callers that stop waiting; its failure is reported to those still waiting.
  promise.catch(() => {});
  const entry = { promise, listeners };
  map.set(key, entry);
  return { entry, started: true };
}

/** `promise`, or the signal's reason as soon as `signal` aborts (the promise goes on). */
async function waitFor<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return await promise;
  signal.throwIfAborted();
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

async function wait<T>(
  entry: InFlight<T>,
  signal: AbortSignal | undefined,
  onProgress?: (p: BuildProgress) => void,
): Promise<T> {
  if (onProgress) entry.listeners.add(onProgress); // a no-op when track attached it
  try {
    return await waitFor(entry.promise, signal);
  } finally {
    if (onProgress) entry.listeners.delete(onProgress);
  }
}

/**
 * Builds the ext4 image of directory `src` at `out` (see the module comment for the contract).
 * Rejects with the signal's reason when `signal` aborts (the build goes on); with a one-line
 * error naming the failing step and entry otherwise.
 */
export async function buildImage(
  src: string,
  out: string,
  opts: BuildOptions = {},
): Promise<BuildResult> {
  const source = resolve(src);
  const output = resolve(out);
  const tools = toolsOf(opts);
  const prepKey = `${source}\0${opts.resolvConf ?? ""}\0${tools.mkfs}`;
  const prepared = track(
    preparing,
    prepKey,
    (emit) => prepare(source, opts, emit),
    opts.onProgress,
  );
  const prep = await wait(prepared.entry, opts.signal, opts.onProgress);
  const fullKey = async () => (await waitFor(prep.full(), opts.signal)).key;

  for (let attempt = 0;; attempt++) {
    const buildKey = `${output}\0${prep.layoutKey}`;
    if (!building.has(buildKey)) {
      const recorded = await recordedKey(output);
      if (recorded !== undefined && recorded === await fullKey()) {
        const { treeHash, key } = await prep.full();
        return { image: output, key, treeHash, geometry: prep.geometry, outcome: "existing" };
      }
    }
    const build = track(
      building,
      buildKey,
      (emit) => runBuild(source, output, prep, tools, opts.verify ?? false, emit),
      opts.onProgress,
    );
    const result = await wait(build.entry, opts.signal, opts.onProgress);
    if (build.started) return result;
    // A build in flight for the same layout may have been of other file bytes: check the key.
    if (result.key === await fullKey()) return { ...result, outcome: "joined" };
    if (attempt > 2) throw new Error(`${src} keeps changing while its image is built; retry`);
  }
}
