/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha, one bidi stream of request/response
 * pairs) so grpcurl and grpc_cli can list and describe the worker's services; connect-es has none
 * built in. Files are served as serialized FileDescriptorProtos, each answer carrying the
 * requested file followed by its transitive imports. Errors are in-band `error_response`s
 * (NOT_FOUND, UNIMPLEMENTED) as the protocol wants, never stream failures.
 *
 * @module
 */
import {
  create,
  type DescFile,
  type DescMessage,
  type DescService,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import * as v1 from "../../proto/gen/grpc/reflection/v1/reflection_pb.ts";
import * as v1alpha from "../../proto/gen/grpc/reflection/v1alpha/reflection_pb.ts";

const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

/** The descriptors a server exposes, indexed by file name and fully-qualified symbol. */
export class DescriptorIndex {
  readonly #files = new Map<string, DescFile>();
  readonly #symbols = new Map<string, DescFile>();
  readonly #messages = new Set<string>();
  readonly services: string[];

  /** Indexes `files` and everything they import; `services` are the names listed. */
  constructor(files: DescFile[], services: DescService[]) {
    for (const f of files) this.#add(f);
    this.services = services.map((s) => s.typeName).sort();
  }

  #add(file: DescFile): void {
    if (this.#files.has(file.proto.name)) return;
    this.#files.set(file.proto.name, file);
    for (const dep of file.dependencies) this.#add(dep);
    for (const s of file.services) {
      this.#symbols.set(s.typeName, file);
      for (const m of s.methods) this.#symbols.set(`${s.typeName}.${m.name}`, file);
    }
    const addMessage = (m: DescMessage) => {
      this.#symbols.set(m.typeName, file);
      this.#messages.add(m.typeName);
      for (const f of m.fields) this.#symbols.set(`${m.typeName}.${f.name}`, file);
      for (const e of m.nestedEnums) this.#symbols.set(e.typeName, file);
      m.nestedMessages.forEach(addMessage);
    };
    file.messages.forEach(addMessage);
    for (const e of file.enums) {
      this.#symbols.set(e.typeName, file);
      for (const v of e.values) this.#symbols.set(`${file.proto.package}.${v.name}`, file);
    }
  }

  /** The serialized file and its transitive imports, file first; undefined when unknown. */
  fileByName(name: string): Uint8Array[] | undefined {
    const file = this.#files.get(name);
    return file && withImports(file).map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
  }

  /** As {@link fileByName} for the file defining `symbol` (leading "." allowed). */
  fileContainingSymbol(symbol: string): Uint8Array[] | undefined {
    const file = this.#symbols.get(symbol.replace(/^\./, ""));
    return file && this.fileByName(file.proto.name);
  }

  hasMessage(typeName: string): boolean {
    return this.#messages.has(typeName.replace(/^\./, ""));
  }
}

function withImports(file: DescFile): DescFile[] {
  const out: DescFile[] = [];
  const visit = (f: DescFile) => {
    if (out.includes(f)) return;
    out.push(f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  return out;
}

type Request = v1.ServerReflectionRequest;
type ResponseInit = MessageInitShape<typeof v1.ServerReflectionResponseSchema>;

function files(found: Uint8Array[] | undefined, what: string): ResponseInit["messageResponse"] {
  return found
    ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: found } }
    : { case: "errorResponse", value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` } };
}

/** The answer to one reflection request (without `original_request`, which the caller adds). */
export function answerReflection(
  index: DescriptorIndex,
  req: Request["messageRequest"],
): ResponseInit["messageResponse"] {
  switch (req.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.services.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return files(index.fileByName(req.value), `file ${JSON.stringify(req.value)}`);
    case "fileContainingSymbol":
      return files(index.fileContainingSymbol(req.value), `symbol ${JSON.stringify(req.value)}`);
    case "allExtensionNumbersOfType":
      return index.hasMessage(req.value)
        ? {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: req.value.replace(/^\./, ""), extensionNumber: [] },
        }
        : {
          case: "errorResponse",
          value: {
            errorCode: NOT_FOUND,
            errorMessage: `type ${JSON.stringify(req.value)} not found`,
          },
        };
    case "fileContainingExtension":
      return {
        case: "errorResponse",
        value: {
          errorCode: NOT_FOUND,
          errorMessage: `extension ${req.value.extensionNumber} of ${
            JSON.stringify(req.value.containingType)
          } not found: this server defines no extensions`,
        },
      };
    default:
      return {
        case: "errorResponse",
        value: {
          errorCode: UNIMPLEMENTED,
          errorMessage: "empty reflection request: set one of its fields",
        },
      };
  }
}

/** The v1 reflection service over `index`. */
export function reflectionV1(index: DescriptorIndex): ServiceImpl<typeof v1.ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(v1.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answerReflection(index, req.messageRequest),
        });
      }
    },
  };
}

/** The v1alpha reflection service over `index` (same messages under the older package). */
export function reflectionV1alpha(
  index: DescriptorIndex,
): ServiceImpl<typeof v1alpha.ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        const answer = answerReflection(index, req.messageRequest as Request["messageRequest"]);
        yield create(v1alpha.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answer as MessageInitShape<
            typeof v1alpha.ServerReflectionResponseSchema
          >["messageResponse"],
        });
      }
    },
  };
}

/** Reflection services for `services` (both protocol versions list themselves too). */
export function reflectionIndex(services: DescService[]): DescriptorIndex {
  const all = [...services, v1.ServerReflection, v1alpha.ServerReflection];
  return new DescriptorIndex(all.map((s) => s.file), all);
}
