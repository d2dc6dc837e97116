"""A small gRPC client for people: list services by reflection, check health, call any RPC with JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def list_services(address: str) -> list[str]:
    """Service names the server at ``address`` reports through reflection."""
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                            timeout=5)
        return sorted(service.name for reply in replies for service in reply.list_services_response.service)


def health(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def call(address: str, method: str, body: dict[str, Any], token: str = "", timeout: float = 10.0) -> list[Any]:
    """Call ``package.Service/Method`` with a JSON body, resolving the types by reflection; returns JSON replies."""
    service_name, _, method_name = method.replace("/", ".").rpartition(".")
    with grpc.insecure_channel(address) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method_descriptor = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(method_descriptor.input_type)
        response_class = message_factory.GetMessageClass(method_descriptor.output_type)
        request = json_format.ParseDict(body, request_class())
        path = f"/{service_name}/{method_name}"
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        serializer, deserializer = request_class.SerializeToString, response_class.FromString
        if method_descriptor.server_streaming:
            stream = channel.unary_stream(path, request_serializer=serializer, response_deserializer=deserializer)
            replies = list(stream(request, timeout=timeout, metadata=metadata))
        else:
            unary = channel.unary_unary(path, request_serializer=serializer, response_deserializer=deserializer)
            replies = [unary(request, timeout=timeout, metadata=metadata)]
    return [json_format.MessageToDict(reply, preserving_proto_field_name=True) for reply in replies]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servicekit.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("services", help="list services by reflection").add_argument("address")
    commands.add_parser("health", help="the server's overall health").add_argument("address")
    invoke = commands.add_parser("call", help="call an RPC with a JSON body")
    invoke.add_argument("address")
    invoke.add_argument("method", help="e.g. dvc.payments.v1.PaymentService/GetPayment")
    invoke.add_argument("body", nargs="?", default="{}", help="request as JSON ('-' reads standard input)")
    invoke.add_argument("--token", default="", help="bearer access token")
    args = parser.parse_args(argv)
    try:
        if args.command == "services":
            print("\n".join(list_services(args.address)))
        elif args.command == "health":
            print(health(args.address))
        else:
            body = json.load(sys.stdin) if args.body == "-" else json.loads(args.body)
            for reply in call(args.address, args.method, body, args.token):
                print(json.dumps(reply, ensure_ascii=False, indent=2))
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
