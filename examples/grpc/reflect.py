"""grpcurl's `list`, `describe` and `call` in Python, over gRPC server reflection: no .proto.

For machines without grpcurl (Debian does not package it). Needs Debian's python3-grpcio and
python3-protobuf, and the reflection protocol's messages generated once with protoc:

    cp <reflection>/v1/reflection.proto reflection_v1.proto
    cp <reflection>/v1alpha/reflection.proto reflection_v1alpha.proto
    protoc --python_out=. reflection_v1.proto reflection_v1alpha.proto

(<reflection> is node_modules/@grpc/reflection/build/proto/grpc/reflection; the copies get
distinct file names because protobuf refuses two files of one name in a process.)

    python3 reflect.py 127.0.0.1:50051 list
    python3 reflect.py 127.0.0.1:50051 describe inference.LLM
    python3 reflect.py 127.0.0.1:50051 call inference.LLM/Embed '{"text": "hi"}'
    python3 reflect.py 127.0.0.1:50051 call grpc.health.v1.Health/Check '{"service": ""}'
    python3 reflect.py 127.0.0.1:50051 call grpc.health.v1.Health/Watch '{}'   # one line per change

`--v1alpha` asks the older reflection service (what grpcurl falls back to). Every answer is
printed as one JSON line (a streaming rpc prints one line per message, as it arrives).
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

args = [arg for arg in sys.argv[1:] if arg != "--v1alpha"]
if "--v1alpha" in sys.argv:
    import reflection_v1alpha_pb2 as reflection
    REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
else:
    import reflection_v1_pb2 as reflection
    REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"

if len(args) < 2 or args[1] not in ("list", "describe", "call"):
    sys.exit(__doc__)
address, command = args[0], args[1]


def ask(channel, **request):
    """One reflection request and its answer (a fresh stream each time: simple, and enough here)."""
    info = channel.stream_stream(
        REFLECTION,
        request_serializer=reflection.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection.ServerReflectionResponse.FromString,
    )
    answer = next(iter(info(iter([reflection.ServerReflectionRequest(**request)]), timeout=10)))
    if answer.HasField("error_response"):
        sys.exit(f"reflection: {answer.error_response.error_message}")
    return answer


def load(channel, symbol):
    """A descriptor pool holding the file that declares `symbol` and the files it imports."""
    pool = descriptor_pool.DescriptorPool()
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in ask(channel, file_containing_symbol=symbol).file_descriptor_response.file_descriptor_proto]
    added = set()
    # Add a file only after the files it imports (the server may send them in any order).
    while len(added) < len(files):
        ready = [f for f in files if f.name not in added and all(dep in added for dep in f.dependency)]
        if not ready:
            sys.exit(f"reflection: the files of {symbol} import files the server did not send")
        for f in ready:
            pool.Add(f)
            added.add(f.name)
    return pool


def message_class(descriptor):
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory().GetPrototype(descriptor)


with grpc.insecure_channel(address) as channel:
    if command == "list":
        for service in ask(channel, list_services="").list_services_response.service:
            print(service.name)
    elif command == "describe":
        service = load(channel, args[2]).FindServiceByName(args[2])
        for method in service.methods:
            stream = "stream " if method.server_streaming else ""
            print(f"rpc {method.name} ({method.input_type.full_name}) returns ({stream}{method.output_type.full_name})")
    else:
        service_name, method_name = args[2].rsplit("/", 1)
        method = load(channel, service_name).FindServiceByName(service_name).methods_by_name[method_name]
        request_class, response_class = message_class(method.input_type), message_class(method.output_type)
        request = json_format.ParseDict(json.loads(args[3] if len(args) > 3 else "{}"), request_class())
        path = f"/{service_name}/{method_name}"
        show = lambda message: print(json.dumps(json_format.MessageToDict(message)), flush=True)
        try:
            if method.server_streaming:
                for message in channel.unary_stream(path, request_class.SerializeToString, response_class.FromString)(request):
                    show(message)
            else:
                show(channel.unary_unary(path, request_class.SerializeToString, response_class.FromString)(request, timeout=10))
        except grpc.RpcError as error:
            sys.exit(f"{error.code().name}: {error.details()}")
