"""A real gRPC client (Debian python3-grpcio) for the API tests, driven by JSON on stdin.

Usage: grpc_client.py SOCKET_PATH < script.json

The script is {"calls": [CALL, ...]}, run in order. A CALL is
  {"path": "/pkg.Service/Method", "request": BASE64, "timeout": SECONDS}          unary
  {"path": ..., "requests": [BASE64, ...], "stream": true}                         bidi stream
  {"path": ..., "request": BASE64, "cancel_on_line": true}                         unary, cancelled
      after the client prints {"started": i} and reads one line from stdin
or {"describe": [BASE64 FileDescriptorProto, ...], "service": NAME}: loads the files into a
descriptor pool and reports the service's methods (an independent check of reflection output).

Prints one JSON object per call, in call order:
  {"code": "OK"|"INVALID_ARGUMENT"|..., "code_num": N, "details": STR, "responses": [BASE64]}
Requests and responses are raw serialized protobuf bytes: the tests encode/decode them in TS.
"""
import base64
import json
import sys

import grpc


def b64(data):
    return base64.b64encode(data).decode()


def status(err):
    return {"code": err.code().name, "code_num": err.code().value[0], "details": err.details()}


def run_call(channel, index, call):
    if "describe" in call:
        return describe(call)
    path = call["path"]
    timeout = call.get("timeout", 30)
    try:
        if call.get("stream"):
            method = channel.stream_stream(path)
            requests = iter([base64.b64decode(r) for r in call["requests"]])
            responses = [b64(r) for r in method(requests, timeout=timeout)]
            return {"code": "OK", "code_num": 0, "details": "", "responses": responses}
        method = channel.unary_unary(path)
        request = base64.b64decode(call.get("request", ""))
        if call.get("cancel_on_line"):
            future = method.future(request, timeout=timeout)
            print(json.dumps({"started": index}), flush=True)
            sys.stdin.readline()
            future.cancel()
            try:
                return {"code": "OK", "code_num": 0, "details": "", "responses": [b64(future.result())]}
            except grpc.FutureCancelledError:
                return {"code": "CANCELLED", "code_num": 1, "details": "cancelled by client"}
        return {"code": "OK", "code_num": 0, "details": "", "responses": [b64(method(request, timeout=timeout))]}
    except grpc.RpcError as err:
        return status(err)


def describe(call):
    from google.protobuf import descriptor_pb2, descriptor_pool

    pool = descriptor_pool.DescriptorPool()
    protos = [descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(f)) for f in call["describe"]]
    added = set()
    # Add dependencies before dependents, as the pool requires.
    while len(added) < len(protos):
        progress = False
        for p in protos:
            if p.name not in added and all(d in added for d in p.dependency):
                pool.Add(p)
                added.add(p.name)
                progress = True
        if not progress:
            return {"error": "unresolved imports: " + ",".join(p.name for p in protos if p.name not in added)}
    service = pool.FindServiceByName(call["service"])
    return {
        "service": service.full_name,
        "file": service.file.name,
        "methods": [
            {
                "name": m.name,
                "input": m.input_type.full_name,
                "output": m.output_type.full_name,
                "client_streaming": getattr(m, "client_streaming", None),
            }
            for m in service.methods
        ],
    }


def main():
    socket_path = sys.argv[1]
    script = json.loads(sys.stdin.readline())
    options = [("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_permit_without_calls", 1)]
    with grpc.insecure_channel("unix://" + socket_path, options=options) as channel:
        for i, call in enumerate(script["calls"]):
            print(json.dumps(run_call(channel, i, call)), flush=True)


if __name__ == "__main__":
    main()
