"""Every service answers the probes its Kubernetes manifests use: HTTP /healthz and /readyz, gRPC health for
readiness ("") and liveness."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
import yaml
from e2e_stack import Platform
from grpc_health.v1 import health_pb2, health_pb2_grpc

from servicekit.health import LIVENESS_SERVICE

K8S = "deploy/k8s/base"


def _probe_paths(service: str) -> set[str]:
    with open(f"{K8S}/{service}/http.yaml", encoding="utf-8") as manifest:
        deployment = next(doc for doc in yaml.safe_load_all(manifest) if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {container[probe]["httpGet"]["path"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")
            if "httpGet" in container.get(probe, {})}


@pytest.mark.parametrize("service", ["identity", "wallet", "payment"])
def test_each_http_edge_answers_the_paths_its_manifest_probes(platform: Platform, service: str) -> None:
    running = getattr(platform, service)
    paths = _probe_paths(service)
    assert paths, f"{service}-http has HTTP probes"
    for path in paths:
        with urllib.request.urlopen(f"{running.http.url}{path}", timeout=5) as answer:
            assert answer.status == 200, path


@pytest.mark.parametrize("service", ["identity", "wallet", "payment"])
def test_each_grpc_server_says_it_is_ready_and_alive(platform: Platform, service: str) -> None:
    running = getattr(platform, service)
    with grpc.insecure_channel(f"127.0.0.1:{running.grpc.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", LIVENESS_SERVICE):
            status = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING, name
