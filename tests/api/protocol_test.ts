/**
 * Protocol surface seen by a real gRPC client: unknown methods answer UNIMPLEMENTED (code 12)
 * with our message, and server reflection (v1 and v1alpha) lists and describes `ateom.Ateom`
 * well enough for python's descriptor pool to load it.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { refusingRuntime } from "./refusing_runtime.ts";
import * as v1 from "../../proto/gen/grpc/reflection/v1/reflection_pb.ts";
import * as v1alpha from "../../proto/gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { callAll, encode } from "./client.ts";
import { withServer } from "./harness.ts";

Deno.test("api: an unknown method or service answers gRPC UNIMPLEMENTED with a message", async () => {
  await withServer(refusingRuntime, async ({ socket }) => {
    const r = await callAll(socket, [
      { path: "/ateom.Ateom/DeleteWorkload" },
      { path: "/no.Such/Service" },
    ]);
    for (const [i, path] of ["/ateom.Ateom/DeleteWorkload", "/no.Such/Service"].entries()) {
      assertEquals([r[i].code, r[i].code_num], ["UNIMPLEMENTED", 12]);
      assertEquals(
        r[i].details,
        `unknown method ${path}: this worker serves ateom.Ateom, grpc.reflection.v1.ServerReflection, grpc.reflection.v1alpha.ServerReflection`,
      );
    }
  });
});

for (const [version, pb] of [["v1", v1], ["v1alpha", v1alpha]] as const) {
  Deno.test(`api: reflection ${version} lists ateom.Ateom and serves its descriptor`, async () => {
    await withServer(refusingRuntime, async ({ socket }) => {
      const req = (messageRequest: Record<string, unknown>) =>
        encode(pb.ServerReflectionRequestSchema, { host: "localhost", messageRequest });
      const [stream] = await callAll(socket, [{
        path: `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
        stream: true,
        requests: [
          req({ case: "listServices", value: "" }),
          req({ case: "fileContainingSymbol", value: "ateom.Ateom" }),
          req({ case: "fileContainingSymbol", value: "ateom.Ateom.RunWorkload" }),
          req({ case: "fileByFilename", value: "ateom/ateom.proto" }),
          req({ case: "fileContainingSymbol", value: "ateom.Nope" }),
          req({ case: "allExtensionNumbersOfType", value: "ateom.RunWorkloadRequest" }),
        ],
      }]);
      assertEquals(stream.code, "OK", stream.details);
      const res = stream.responses!.map((b) => fromBinary(pb.ServerReflectionResponseSchema, b));
      assertEquals(res.length, 6);
      assertEquals(res[0].validHost, "localhost");
      assertEquals(res[0].originalRequest?.messageRequest.case, "listServices");
      const list = res[0].messageResponse;
      assert(list.case === "listServicesResponse");
      assertEquals(list.value.service.map((s) => s.name), [
        "ateom.Ateom",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
      const fds: Uint8Array[][] = [];
      for (const r of res.slice(1, 4)) {
        assert(r.messageResponse.case === "fileDescriptorResponse", r.messageResponse.case);
        fds.push(r.messageResponse.value.fileDescriptorProto);
      }
      const file = fromBinary(FileDescriptorProtoSchema, fds[0][0]);
      assertEquals([file.name, file.package], ["ateom/ateom.proto", "ateom"]);
      assertEquals(file.service[0].method.map((m) => m.name), [
        "RunWorkload",
        "CheckpointWorkload",
        "RestoreWorkload",
      ]);
      assertEquals(fds[1], fds[0]);
      assertEquals(fds[2], fds[0]);
      const missing = res[4].messageResponse;
      assert(missing.case === "errorResponse");
      assertEquals(missing.value.errorCode, 5);
      assertStringIncludes(missing.value.errorMessage, 'symbol "ateom.Nope" not found');
      const ext = res[5].messageResponse;
      assert(ext.case === "allExtensionNumbersResponse");
      assertEquals(ext.value.baseTypeName, "ateom.RunWorkloadRequest");

      // An independent reader (python protobuf's descriptor pool) loads what we served.
      const [described] = await callAll(socket, [{ describe: fds[0], service: "ateom.Ateom" }]);
      assertEquals(described.file, "ateom/ateom.proto");
      assertEquals(described.methods!.map((m) => [m.name, m.input, m.output]), [
        ["RunWorkload", "ateom.RunWorkloadRequest", "ateom.RunWorkloadResponse"],
        [
          "CheckpointWorkload",
          "ateom.CheckpointWorkloadRequest",
          "ateom.CheckpointWorkloadResponse",
        ],
        ["RestoreWorkload", "ateom.RestoreWorkloadRequest", "ateom.RestoreWorkloadResponse"],
      ]);
    });
  });
}
