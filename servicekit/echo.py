"""The bare echo servicer: the raw limit of the server stack that benchmarks compare against."""

from __future__ import annotations

import grpc
from dvc.diagnostics.v1 import echo_pb2, echo_pb2_grpc

from servicekit.grpc_server import ServiceRegistration


class EchoServicer(echo_pb2_grpc.EchoServiceServicer):
    """Returns the request's message."""

    def Echo(self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(message=request.message)


def echo_registration() -> ServiceRegistration:
    return ServiceRegistration(echo_pb2_grpc.add_EchoServiceServicer_to_server, EchoServicer(),
                               echo_pb2.DESCRIPTOR.services_by_name["EchoService"].full_name)
