/**
 * `file://DIR/`: objects are files below DIR. Writes go to a hidden temporary file in the target
 * directory and are renamed into place when complete, so readers never see a partial object.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkName, NotFoundError, type Store } from "./store.ts";

const TEMP_MARK = ".partial-";

export class FileStore implements Store {
  readonly uri: string;
  readonly root: string;

  constructor(url: URL) {
    if (url.host !== "" && url.host !== "localhost") {
      throw new Error(`file store URI must be local (file:///DIR/), got host ${url.host}`);
    }
    this.root = fileURLToPath(url).replace(/\/+$/, "") || "/";
    this.uri = url.href.endsWith("/") ? url.href : `${url.href}/`;
  }

  #path(name: string): string {
    return join(this.root, checkName(name));
  }

  async put(name: string, body: ReadableStream<Uint8Array> | Uint8Array): Promise<void> {
    const path = this.#path(name);
    await Deno.mkdir(dirname(path), { recursive: true });
    const temp = join(
      dirname(path),
      `.${name.split("/").pop()}${TEMP_MARK}${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`,
    );
    try {
      if (body instanceof Uint8Array) {
        await Deno.writeFile(temp, body, { createNew: true });
      } else {
        const file = await Deno.open(temp, { write: true, createNew: true });
        await body.pipeTo(file.writable);
      }
      await Deno.rename(temp, path);
    } catch (e) {
      await Deno.remove(temp).catch(() => {});
      throw new Error(`cannot write ${this.uri}${name}: ${(e as Error).message}`);
    }
  }

  async get(name: string): Promise<ReadableStream<Uint8Array>> {
    try {
      return (await Deno.open(this.#path(name))).readable;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new NotFoundError(`object ${this.uri}${name} does not exist`);
      }
      throw e;
    }
  }

  async exists(name: string): Promise<boolean> {
    try {
      return (await Deno.stat(this.#path(name))).isFile;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }

  async list(prefix = ""): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, rel: string) => {
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(dir));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return;
        throw e;
      }
      for (const entry of entries) {
        const name = rel ? `${rel}/${entry.name}` : entry.name;
        if (entry.isDirectory) await walk(join(dir, entry.name), name);
        else if (entry.isFile && !entry.name.includes(TEMP_MARK) && name.startsWith(prefix)) {
          out.push(name);
        }
      }
    };
    await walk(this.root, "");
    return out.sort();
  }

  async delete(name: string): Promise<void> {
    await Deno.remove(this.#path(name)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}
