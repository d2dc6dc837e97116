"""The Kubernetes overlays pass the offline validator, implement the deployment brief, and every rule can fail."""

from __future__ import annotations

import importlib
import ipaddress
import json
import math
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from deploy.k8s import validate
from servicekit.health import LIVENESS_SERVICE

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
FIXTURES = ROOT / "tests" / "fixtures" / "k8s"
OVERLAYS = ("dev", "prod", "loadtest")
NAMESPACES = {"dev": "dvc-dev", "prod": "dvc", "loadtest": "dvc-dev"}



class Ports(NamedTuple):
    grpc: int
    http: int
    metrics: int
    prefix: str


# The service table of the deployment brief (issue 7).
SERVICES = {
    "identity": Ports(grpc=7051, http=8081, metrics=9461, prefix="IDENTITY"),
    "payment": Ports(grpc=7052, http=8082, metrics=9462, prefix="PAYMENT"),
    "wallet": Ports(grpc=7053, http=8083, metrics=9463, prefix="WALLET"),
}
SLO_METRICS = ("dvc_grpc_server_handling_seconds", "dvc_grpc_server_handled_total", "dvc_payment_callback_lag_seconds",
               "dvc_payment_events_dead_lettered_total", "dvc_connector_circuit_open",
               "dvc_reconciliation_mismatches_total")


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(validate.render(K8S / "overlays" / overlay))


def objects(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in rendered(overlay) if obj["kind"] == kind}


def main_container(obj: Mapping[str, Any]) -> dict[str, Any]:
    template = validate.pod_template(obj)
    assert template is not None
    return dict(template["spec"]["containers"][0])


# ---- the real overlays ----------------------------------------------------------------------------------------


def test_validator_command_passes_every_overlay_and_lists_the_skipped_custom_resources() -> None:
    result = subprocess.run([sys.executable, "-m", "deploy.k8s.validate"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for overlay in OVERLAYS:
        assert f"[{overlay}] " in result.stdout and f"[{overlay}] " + "0 objects" not in result.stdout
    skipped = [line for line in result.stdout.splitlines() if "skipped schema check" in line]
    for kind in ("ServiceMonitor", "PrometheusRule", "Cluster"):
        assert any(f" {kind} " in line for line in skipped), f"{kind} should be listed as skipped"
    elapsed = float(re.search(r"in ([0-9.]+) s$", result.stdout.strip()).group(1))  # type: ignore[union-attr]
    assert elapsed < 60


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_grpc_server_http_edge_worker_and_migration_job(overlay: str) -> None:
    deployments, jobs = objects(overlay, "Deployment"), objects(overlay, "Job")
    for service, spec in SERVICES.items():
        grpc = main_container(deployments[f"{service}-grpc"])
        assert grpc["command"] == ["python", "-m", f"{service}_service", "serve-grpc"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert grpc[probe]["grpc"]["port"] == spec.grpc
        # A database outage takes gRPC pods out of rotation (readiness, service "") but must not restart them all:
        # startup and liveness ask for the entry that stays SERVING while the process runs.
        assert "service" not in grpc["readinessProbe"]["grpc"]
        assert grpc["startupProbe"]["grpc"]["service"] == grpc["livenessProbe"]["grpc"]["service"] == LIVENESS_SERVICE
        http = main_container(deployments[f"{service}-http"])
        assert http["command"] == ["python", "-m", f"{service}_service", "serve-http"]
        assert http["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert http["livenessProbe"]["httpGet"]["path"] == "/healthz"
        migrate = main_container(jobs[f"{service}-migrate"])
        assert migrate["command"] == ["python", "-m", f"{service}_service", "migrate"]
        assert jobs[f"{service}-migrate"]["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "Sync"
        # servicekit starts background workers (payment's outbox, identity's and the wallet's sweeps) only for
        # `serve` and `worker`, so every service needs a Deployment running `worker`.
        worker_deployment = deployments[f"{service}-worker"]
        worker = main_container(worker_deployment)
        assert worker["command"] == ["python", "-m", f"{service}_service", "worker"]
        assert worker_deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert worker[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        # The same settings and files as the gRPC server (start-up builds the same components).
        assert worker["envFrom"] == grpc["envFrom"]
        assert mounts(worker) == mounts(grpc)


def sync_wave(obj: Mapping[str, Any]) -> int:
    """Argo CD's sync wave of an object (0 unless annotated)."""
    return int((obj["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_argo_cd_syncs_what_a_migration_job_references_in_an_earlier_wave(overlay: str) -> None:
    # Argo CD starts a wave only when the previous one is healthy: a Job whose ServiceAccount or ConfigMaps come in
    # a later wave never gets a pod, and the sync waits for it until the Job's deadline.
    by_kind_and_name = {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered(overlay)}
    jobs = [obj for obj in rendered(overlay) if obj["kind"] == "Job"
            and obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "migrate"]
    assert len(jobs) == len(SERVICES)
    for job in jobs:
        spec = job["spec"]["template"]["spec"]
        references = [("ServiceAccount", spec["serviceAccountName"])]
        references += [("ConfigMap", source["configMapRef"]["name"]) for container in spec["containers"]
                       for source in container.get("envFrom", []) if "configMapRef" in source]
        assert len(references) > 1
        for reference in references:
            assert reference in by_kind_and_name, f"{job['metadata']['name']} references a missing {reference}"
            assert sync_wave(by_kind_and_name[reference]) < sync_wave(job), (job["metadata"]["name"], reference)
        # The databases the Jobs migrate (CloudNativePG in prod) come before them too.
        for (kind, name), obj in by_kind_and_name.items():
            if kind in ("Cluster", "Database"):
                assert sync_wave(obj) < sync_wave(job), (job["metadata"]["name"], kind, name)


def mounts(container: Mapping[str, Any]) -> list[tuple[str, str]]:
    return sorted((mount["name"], mount["mountPath"]) for mount in container.get("volumeMounts", []))


def env_of(overlay: str, container: Mapping[str, Any]) -> dict[str, str]:
    """The environment a container gets from its envFrom ConfigMaps (secrets excluded)."""
    maps = objects(overlay, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]]["data"])
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_match_the_ports_and_point_at_identitys_jwks_in_the_namespace(overlay: str) -> None:
    deployments = objects(overlay, "Deployment")
    namespace = NAMESPACES[overlay]
    for service, spec in SERVICES.items():
        for role in ("grpc", "http", "worker"):
            container = main_container(deployments[f"{service}-{role}"])
            env = env_of(overlay, container)
            prefix = spec.prefix
            assert env[f"{prefix}_GRPC_PORT"] == str(spec.grpc)
            assert env[f"{prefix}_HTTP_PORT"] == str(spec.http)
            assert env[f"{prefix}_METRICS_PORT"] == str(spec.metrics)
            assert env[f"{prefix}_AUTO_MIGRATE"] == "false"
            assert env["DVC_JWKS_URL"] == f"http://identity-http.{namespace}:8081/jwks.json"
            assert {"name": "metrics", "containerPort": spec.metrics} in container["ports"]
            secret_refs = [source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source]
            assert f"{service}-secrets" in secret_refs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_wallets_pages_call_the_grpc_services_not_their_own_pod(overlay: str) -> None:
    # The defaults (127.0.0.1:7053, 127.0.0.1:7051) assume `serve`; wallet-http runs neither gRPC server.
    env = env_of(overlay, main_container(objects(overlay, "Deployment")["wallet-http"]))
    assert env["WALLET_WEB_GRPC_TARGET"] == "wallet-grpc:7053"
    assert env["WALLET_WEB_IDENTITY_TARGET"] == "identity-grpc:7051"
    services = objects(overlay, "Service")
    for setting in ("WALLET_WEB_GRPC_TARGET", "WALLET_WEB_IDENTITY_TARGET"):
        host, port = env[setting].rsplit(":", 1)
        ports = {item["name"]: item["port"] for item in services[host]["spec"]["ports"]}
        assert ports["grpc"] == int(port), setting
        # The Service named by the setting selects the gRPC server's pods (the Deployment of the same name).
        assert validate.selector_matches({"matchLabels": services[host]["spec"]["selector"]},
                                         pod(overlay, host).labels), setting


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_expose_the_brief_ports(overlay: str) -> None:
    services = objects(overlay, "Service")
    for service, spec in SERVICES.items():
        grpc_ports = {port["name"]: port["port"] for port in services[f"{service}-grpc"]["spec"]["ports"]}
        http_ports = {port["name"]: port["port"] for port in services[f"{service}-http"]["spec"]["ports"]}
        assert grpc_ports == {"grpc": spec.grpc, "metrics": spec.metrics}
        assert http_ports == {"http": spec.http, "metrics": spec.metrics}


def test_prod_runs_more_and_larger_pods_than_dev_from_versioned_images() -> None:
    for name, hpa in objects("prod", "HorizontalPodAutoscaler").items():
        dev_hpa = objects("dev", "HorizontalPodAutoscaler")[name]
        assert hpa["spec"]["minReplicas"] > dev_hpa["spec"]["minReplicas"]
        assert hpa["spec"]["minReplicas"] >= 2
    for name, deployment in objects("prod", "Deployment").items():
        prod_cpu = main_container(deployment)["resources"]["requests"]["cpu"]
        dev_cpu = main_container(objects("dev", "Deployment")[name])["resources"]["requests"]["cpu"]
        assert millicores(prod_cpu) > millicores(dev_cpu)
        image = main_container(deployment)["image"]
        assert re.search(r":\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$", image) or "@sha256:" in image, image


def millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_platform_pod_is_hardened_with_a_writable_tmp(overlay: str) -> None:
    for obj in rendered(overlay):
        template = validate.pod_template(obj)
        if template is None or template["metadata"]["labels"].get("app.kubernetes.io/name") not in SERVICES:
            continue
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        container = spec["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert any(volume["name"] == "tmp" and "emptyDir" in volume for volume in spec["volumes"])
        if obj["kind"] == "Deployment":
            assert {c["topologyKey"] for c in spec["topologySpreadConstraints"]} == {
                "topology.kubernetes.io/zone", "kubernetes.io/hostname"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_has_a_pod_disruption_budget_and_autoscaler(overlay: str) -> None:
    pdbs = objects(overlay, "PodDisruptionBudget")
    hpas = objects(overlay, "HorizontalPodAutoscaler")
    for name, deployment in objects(overlay, "Deployment").items():
        if not name.startswith(tuple(SERVICES)):
            continue
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(validate.selector_matches(pdb["spec"]["selector"], labels) for pdb in pdbs.values()), name
        assert hpas[name]["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


def test_prometheus_scrapes_every_metrics_port() -> None:
    monitors = objects("prod", "ServiceMonitor")
    services = objects("prod", "Service")
    for service, spec in SERVICES.items():
        selector = monitors[service]["spec"]["selector"]
        scraped = [svc for svc in services.values()
                   if validate.selector_matches(selector, svc["metadata"].get("labels", {}))
                   and any(port["name"] == "metrics" for port in svc["spec"]["ports"])]
        names = {svc["metadata"]["name"] for svc in scraped}
        expected = {f"{service}-grpc", f"{service}-http", f"{service}-worker"}
        assert names == expected
        assert all(port["port"] == spec.metrics for svc in scraped for port in svc["spec"]["ports"]
                   if port["name"] == "metrics")
    for name, deployment in objects("prod", "Deployment").items():
        service = name.split("-")[0]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(SERVICES[service].metrics)


def exported_metric_names() -> set[str]:
    """Every series name the three services can export, read from the registry their modules fill on import."""
    for module in ("identity_service.bootstrap", "payment_service.bootstrap", "wallet_service.bootstrap",
                   "payment_service.adapters.connector_registry", "servicekit.process"):
        importlib.import_module(module)
    from prometheus_client import REGISTRY

    names: set[str] = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in ("", "_total", "_bucket", "_sum", "_count", "_created")}
    return names


def test_every_metric_an_alert_or_panel_queries_is_one_the_code_exports() -> None:
    rule = objects("prod", "PrometheusRule")["dvc-platform-slos"]
    expressions = " ".join(item["expr"] for group in rule["spec"]["groups"] for item in group["rules"])
    dashboards = [obj for obj in objects("prod", "ConfigMap").values()
                  if obj["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    dashboard = json.loads(dashboards[0]["data"]["dvc-platform.json"])
    queries = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
    queried = set(re.findall(r"\bdvc_[a-z0-9_]+", expressions + " " + queries))
    assert queried and queried <= exported_metric_names(), f"never exported: {queried - exported_metric_names()}"


def test_latency_objectives_leave_out_every_streaming_rpc() -> None:
    # A stream lasts as long as its client reads: held to a unary p99 it would page for nothing.
    streaming = set(re.findall(r"rpc (\w+)\((?:stream [^)]*|[^)]*)\) returns \(stream|rpc (\w+)\(stream",
                               " ".join(path.read_text() for path in Path("proto").rglob("*.proto"))))
    methods = {name for pair in streaming for name in pair if name}
    assert {"RedeemShare", "WatchPayments", "IssueDocument"} <= methods
    rule = objects("prod", "PrometheusRule")["dvc-platform-slos"]
    [p99] = [item["expr"] for group in rule["spec"]["groups"] for item in group["rules"]
             if item.get("record") == "dvc:grpc_server_handling_seconds:p99_rate5m"]
    excluded = re.search(r'grpc_method!~"([^"]+)"', p99)
    assert excluded is not None
    assert all(re.fullmatch(excluded.group(1), method) for method in methods), methods


def test_alerts_and_dashboard_cover_every_slo_metric() -> None:
    rule = objects("prod", "PrometheusRule")["dvc-platform-slos"]
    expressions = " ".join(item["expr"] for group in rule["spec"]["groups"] for item in group["rules"])
    alerts = [item for group in rule["spec"]["groups"] for item in group["rules"] if "alert" in item]
    for metric in SLO_METRICS:
        assert metric in expressions, f"no rule uses {metric}"
    assert all(item["labels"]["severity"] in ("warning", "critical") for item in alerts)
    # The latency objective of PLATFORM.md is p99 <= 100 ms.
    assert any("0.99" in expressions and item["expr"].strip().endswith("> 0.1") for item in alerts)
    dashboards = [obj for obj in objects("prod", "ConfigMap").values()
                  if obj["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert len(dashboards) == 1
    dashboard = json.loads(dashboards[0]["data"]["dvc-platform.json"])
    queries = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
    for metric in SLO_METRICS:
        assert metric in queries, f"no dashboard panel shows {metric}"


def test_locust_runs_distributed_from_the_loadtests_locustfile() -> None:
    deployments = objects("loadtest", "Deployment")
    master, worker = main_container(deployments["locust-master"]), main_container(deployments["locust-worker"])
    assert master["command"][:3] == worker["command"][:3] == ["locust", "-f", "loadtests/locustfile.py"]
    assert "--master" in master["command"] and "--worker" in worker["command"]
    assert "--master-host=locust-master" in worker["command"]
    ports = {port["name"]: port["port"] for port in objects("loadtest", "Service")["locust-master"]["spec"]["ports"]}
    assert ports == {"web": 8089, "workers": 5557}
    assert "locust-master" not in objects("dev", "Deployment")


def test_the_secrets_example_defines_every_referenced_secret_and_is_never_applied() -> None:
    examples = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())}
    referenced: set[str] = set()
    for overlay in OVERLAYS:
        for obj in rendered(overlay):
            referenced |= set(re.findall(r"'(?:secretName|name)': '([^']+)'", str(secret_refs(obj))))
    assert referenced, "the overlays reference secrets"
    assert referenced <= set(examples), f"missing from secrets.example.yaml: {referenced - set(examples)}"
    for service, spec in SERVICES.items():
        assert f"{spec.prefix}_DATABASE_URL" in examples[f"{service}-secrets"]["stringData"]
    assert {"WALLET_S3_ACCESS_KEY", "WALLET_S3_SECRET_KEY"} <= set(examples["wallet-secrets"]["stringData"])
    assert "IDENTITY_KEY_ENCRYPTION_KEY" in examples["identity-secrets"]["stringData"]
    for kustomization in K8S.rglob("kustomization.yaml"):
        # Parsed, so comments pointing readers at the example do not count as references.
        assert "secrets.example" not in str(yaml.safe_load(kustomization.read_text())), kustomization


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_wallets_http_edge_reads_the_web_session_keys(overlay: str) -> None:
    readers = {f"{obj['kind']}/{obj['metadata']['name']}" for obj in rendered(overlay)
               if "'wallet-web-secrets'" in str(secret_refs(obj))}
    assert readers == {"Deployment/wallet-http"}
    examples = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())}
    assert set(examples["wallet-web-secrets"]["stringData"]) == {"WALLET_WEB_SESSION_KEYS"}
    assert "WALLET_WEB_SESSION_KEYS" not in examples["wallet-secrets"]["stringData"]


def secret_refs(obj: Any) -> list[Any]:
    """Every secretRef, secretKeyRef, secret volume and CloudNativePG secret reference inside ``obj``."""
    found: list[Any] = []
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if key in ("secretRef", "secretKeyRef", "secret", "passwordSecret") and isinstance(value, Mapping):
                found.append(dict(value))
            else:
                found.extend(secret_refs(value))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(secret_refs(item))
    return found


# ---- network policies: the brief's real flows are open, everything else is closed --------------------------------


@dataclass(frozen=True)
class Peer:
    """A pod (namespace and labels) or an address outside the cluster."""

    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""


INGRESS_CONTROLLER = Peer("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = Peer("monitoring", {"app.kubernetes.io/name": "prometheus"})
KUBE_DNS = Peer("kube-system", {"k8s-app": "kube-dns"})
BANK = Peer(ip="203.0.113.10")  # a public address (documentation range, outside every private block)
CLUSTER_INTERNAL = Peer(ip="10.20.30.40")


def peer_matches(peer: Mapping[str, Any], target: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        if not target.ip:
            return False
        address = ipaddress.ip_address(target.ip)
        block = peer["ipBlock"]
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
                       if ipaddress.ip_network(cidr).version == address.version)
    if target.ip:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": target.namespace}
        if not validate.selector_matches(peer["namespaceSelector"], namespace_labels):
            return False
    elif target.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or validate.selector_matches(peer["podSelector"], target.labels)


def direction_allows(policies: list[dict[str, Any]], pod: Peer, other: Peer, port: int, protocol: str,
                     direction: str) -> bool:
    """Whether ``pod``'s policies let traffic to (Egress) or from (Ingress) ``other`` on ``port``."""
    selecting = [policy for policy in policies if policy["metadata"]["namespace"] == pod.namespace
                 and direction in policy["spec"].get("policyTypes", [])
                 and validate.selector_matches(policy["spec"]["podSelector"], pod.labels)]
    if not selecting:
        return True  # not isolated in this direction
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            ports = rule.get("ports")
            if peers and not any(peer_matches(peer, other, pod.namespace) for peer in peers):
                continue
            if ports and not any(item.get("port") == port and item.get("protocol", "TCP") == protocol
                                 for item in ports):
                continue
            return True
    return False


def allowed(overlay: str, source: Peer, destination: Peer, port: int, protocol: str = "TCP") -> bool:
    policies = list(objects(overlay, "NetworkPolicy").values())
    namespace = NAMESPACES[overlay]
    egress_ok = source.namespace != namespace or direction_allows(policies, source, destination, port, protocol,
                                                                  "Egress")
    ingress_ok = destination.namespace != namespace or direction_allows(policies, destination, source, port,
                                                                        protocol, "Ingress")
    return egress_ok and ingress_ok


def pod(overlay: str, name: str) -> Peer:
    """The pod of a rendered workload; CloudNativePG's instances carry the Cluster's inherited labels."""
    namespace = NAMESPACES[overlay]
    for obj in rendered(overlay):
        template = validate.pod_template(obj)
        if template is not None and obj["metadata"]["name"] == name:
            return Peer(namespace, template["metadata"]["labels"])
        if obj["kind"] == "Cluster" and name == "postgres":
            return Peer(namespace, obj["spec"]["inheritedMetadata"]["labels"])
    raise AssertionError(f"no workload {name} in {overlay}")


def roles(overlay: str, service: str) -> list[str]:
    return [f"{service}-grpc", f"{service}-http", f"{service}-worker", f"{service}-migrate"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_real_flows_of_the_brief_are_allowed(overlay: str) -> None:
    postgres = pod(overlay, "postgres")
    for service, spec in SERVICES.items():
        assert allowed(overlay, INGRESS_CONTROLLER, pod(overlay, f"{service}-http"), spec.http)
        assert allowed(overlay, INGRESS_CONTROLLER, pod(overlay, f"{service}-grpc"), spec.grpc)
        for role in roles(overlay, service):
            assert allowed(overlay, pod(overlay, role), postgres, 5432), f"{role} -> PostgreSQL"
            assert allowed(overlay, pod(overlay, role), KUBE_DNS, 53, "UDP"), f"{role} -> DNS"
            if not role.endswith("migrate"):
                assert allowed(overlay, PROMETHEUS, pod(overlay, role), spec.metrics), f"scrape {role}"
    for role in roles(overlay, "payment"):
        assert allowed(overlay, pod(overlay, role), pod(overlay, "wallet-grpc"), 7053)
        assert allowed(overlay, pod(overlay, role), pod(overlay, "identity-http"), 8081)
        # Not in the brief's list, but PAYMENT_IDENTITY_ADDR is identity's gRPC server (payment's own token).
        assert allowed(overlay, pod(overlay, role), pod(overlay, "identity-grpc"), 7051)
    for role in ("wallet-grpc", "wallet-http"):
        assert allowed(overlay, pod(overlay, role), pod(overlay, "identity-http"), 8081)
    for role in ("wallet-grpc", "wallet-http", "wallet-worker"):
        assert allowed(overlay, pod(overlay, role), pod(overlay, "seaweedfs"), 8333)
    # The citizen's pages (wallet-http) call the wallet's and identity's gRPC APIs through their Services.
    assert allowed(overlay, pod(overlay, "wallet-http"), pod(overlay, "wallet-grpc"), 7053)
    assert allowed(overlay, pod(overlay, "wallet-http"), pod(overlay, "identity-grpc"), 7051)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_flows_outside_the_brief_are_denied(overlay: str) -> None:
    postgres = pod(overlay, "postgres")
    stranger = Peer("default", {"app": "curious"})
    for service, spec in SERVICES.items():
        assert not allowed(overlay, stranger, pod(overlay, f"{service}-grpc"), spec.grpc)
        assert not allowed(overlay, INGRESS_CONTROLLER, pod(overlay, f"{service}-grpc"), spec.metrics)
        assert not allowed(overlay, pod(overlay, f"{service}-http"), BANK, 80)
    assert not allowed(overlay, INGRESS_CONTROLLER, postgres, 5432)
    assert not allowed(overlay, stranger, postgres, 5432)
    assert not allowed(overlay, pod(overlay, "wallet-grpc"), BANK, 443)
    assert not allowed(overlay, pod(overlay, "wallet-grpc"), pod(overlay, "payment-grpc"), 7052)
    assert not allowed(overlay, pod(overlay, "identity-grpc"), pod(overlay, "wallet-grpc"), 7053)
    # Only the wallet's pages log people in through identity's gRPC API; its gRPC server does not.
    assert not allowed(overlay, pod(overlay, "wallet-grpc"), pod(overlay, "identity-grpc"), 7051)
    assert not allowed(overlay, pod(overlay, "payment-grpc"), pod(overlay, "seaweedfs"), 8333)
    assert not allowed(overlay, pod(overlay, "identity-http"), pod(overlay, "payment-http"), 8082)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_payments_serving_roles_reach_the_banks_and_no_other_pod_does(overlay: str) -> None:
    # RefundPayment (gRPC server) calls the bank's refund API, the payment page (HTTP edge) the connector's create,
    # the worker status queries and provincial callbacks.
    for role in ("payment-grpc", "payment-http", "payment-worker"):
        assert allowed(overlay, pod(overlay, role), BANK, 443), f"{role} -> bank"
        assert not allowed(overlay, pod(overlay, role), BANK, 80), f"{role} -> bank over plain HTTP"
        assert not allowed(overlay, pod(overlay, role), CLUSTER_INTERNAL, 443), f"{role} -> private address"
    # identity's gRPC server and HTTP edge reach 443 outside for the upstream identity providers; no other pod.
    for role in ("payment-migrate", "wallet-grpc", "wallet-http", "wallet-worker", "wallet-migrate",
                 "identity-worker", "identity-migrate"):
        assert not allowed(overlay, pod(overlay, role), BANK, 443), f"{role} -> bank"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_identitys_and_the_wallets_workers_reach_their_data_stores_and_nothing_more(overlay: str) -> None:
    postgres, seaweedfs = pod(overlay, "postgres"), pod(overlay, "seaweedfs")
    stranger = Peer("default", {"app": "curious"})
    identity_worker, wallet_worker = pod(overlay, "identity-worker"), pod(overlay, "wallet-worker")
    assert allowed(overlay, identity_worker, postgres, 5432)
    assert allowed(overlay, wallet_worker, postgres, 5432)
    assert allowed(overlay, wallet_worker, seaweedfs, 8333)
    assert not allowed(overlay, identity_worker, seaweedfs, 8333)
    platform = [(pod(overlay, f"{service}-{role}"), port) for service, spec in SERVICES.items()
                for role, port in (("grpc", spec.grpc), ("http", spec.http))]
    for name, worker, spec in (("identity-worker", identity_worker, SERVICES["identity"]),
                               ("wallet-worker", wallet_worker, SERVICES["wallet"])):
        for target, port in platform:
            assert not allowed(overlay, worker, target, port), f"{name} -> {target.labels} :{port}"
        assert not allowed(overlay, worker, BANK, 443), name
        # Nothing calls a worker; only Prometheus scrapes it.
        assert allowed(overlay, PROMETHEUS, worker, spec.metrics), name
        assert not allowed(overlay, INGRESS_CONTROLLER, worker, spec.metrics), name
        assert not allowed(overlay, stranger, worker, spec.metrics), name


def test_load_generators_reach_the_platform_but_not_its_database() -> None:
    worker = pod("loadtest", "locust-worker")
    for service, spec in SERVICES.items():
        assert allowed("loadtest", worker, pod("loadtest", f"{service}-grpc"), spec.grpc)
        assert allowed("loadtest", worker, pod("loadtest", f"{service}-http"), spec.http)
    assert allowed("loadtest", worker, pod("loadtest", "locust-master"), 5557)
    assert not allowed("loadtest", worker, pod("loadtest", "postgres"), 5432)


# ---- the broken fixture: every rule has a case that fails it ---------------------------------------------------

# Object -> the rules it breaks, by construction of tests/fixtures/k8s/broken (one variant per rule).
EXPECTED_FAILURES = {
    "Deployment fixture/schema-fixture": {"schema"},
    "Frobnicator fixture/unknown-kind": {"unknown-kind"},
    "Deployment fixture/readiness-probe-fixture": {"readiness-probe"},
    "Deployment fixture/liveness-probe-fixture": {"liveness-probe"},
    "Deployment fixture/grpc-probe-fixture": {"grpc-probe"},
    "Deployment fixture/resource-requests-fixture": {"resource-requests"},
    "Deployment fixture/resource-limits-fixture": {"resource-limits"},
    "Deployment fixture/run-as-non-root-fixture": {"run-as-non-root"},
    "Deployment fixture/read-only-root-fs-fixture": {"read-only-root-fs"},
    "Deployment fixture/drop-all-capabilities-fixture": {"drop-all-capabilities"},
    "Deployment fixture/no-privilege-escalation-fixture": {"no-privilege-escalation"},
    "Deployment fixture/seccomp-profile-fixture": {"seccomp-profile"},
    "Deployment fixture/service-account-token-fixture": {"service-account-token"},
    "Deployment fixture/image-tag-latest-fixture": {"image-tag"},
    "Deployment fixture/image-tag-untagged-fixture": {"image-tag"},
    "Deployment fixture/network-policy-fixture": {"network-policy"},
    "Deployment fixture-open/default-deny-fixture": {"network-policy"},
    "Namespace fixture-open": {"default-deny"},
    "Service fixture/service-selector": {"service-selector"},
}


@cache
def broken_report() -> validate.Report:
    return validate.validate_kustomization(FIXTURES / "broken")


def failures_by_object(report: validate.Report) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for failure in report.failures:
        found.setdefault(failure.obj, set()).add(failure.rule)
    return found


def test_the_broken_fixture_fails_exactly_the_expected_rules_and_the_control_passes() -> None:
    found = failures_by_object(broken_report())
    assert found == EXPECTED_FAILURES
    assert "Deployment fixture/fixture" not in found
    assert broken_report().skipped == ["monitoring.coreos.com/v1 ServiceMonitor fixture/fixture"]


@pytest.mark.parametrize("rule", sorted(set(validate.RULES) - {"render"}))
def test_every_rule_has_a_failing_case(rule: str) -> None:
    assert any(failure.rule == rule for failure in broken_report().failures), f"no fixture breaks {rule}"


def test_an_unrenderable_kustomization_fails_the_render_rule() -> None:
    report = validate.validate_kustomization(FIXTURES / "unrenderable")
    assert [failure.rule for failure in report.failures] == ["render"]
    assert "missing.yaml" in report.failures[0].detail


def test_command_prints_one_line_per_failure_and_exits_non_zero_for_the_fixture() -> None:
    result = subprocess.run([sys.executable, "-m", "deploy.k8s.validate", "--path", str(FIXTURES / "broken")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines()
             if line.startswith("[broken] ") and re.match(r"\[broken\] .+?: [a-z-]+: ", line)
             and "skipped schema check" not in line]
    expected_count = sum(len(rules) for rules in EXPECTED_FAILURES.values()) + 1  # grpc-probe: both probes
    assert len(lines) == expected_count
    assert any(line.startswith("[broken] Deployment fixture/image-tag-latest-fixture: image-tag: ") for line in lines)


# ---- capacity arithmetic of the README ---------------------------------------------------------------------------


def test_readme_capacity_arithmetic_follows_from_the_daily_volumes() -> None:
    readme = (K8S / "README.md").read_text()
    # 70% of the day's volume in 8 office hours, peak hour twice the office-hour mean.
    dossiers_peak_per_s = 120_000 * 0.70 / 8 * 2 / 3600
    payments_peak_per_s = 60_000 * 0.70 / 8 * 2 / 3600
    assert f"{dossiers_peak_per_s:.2f}" in readme and f"{payments_peak_per_s:.2f}" in readme
    assert f"{dossiers_peak_per_s * 10:.1f}" in readme and f"{payments_peak_per_s * 10:.1f}" in readme
    assert "replicas = ceil(peak rps / (per-replica rps × 0.5))" in readme
    # Every filled-in replica count is what its own formula gives.
    formulas = re.findall(r"max\((\d+), ceil\(([\d.]+) / ([\d.]+)\)\) = \*\*(\d+)\*\*", readme)
    assert len(formulas) >= 8
    for floor, need, per_replica_half, replicas in formulas:
        assert int(replicas) == max(int(floor), math.ceil(float(need) / float(per_replica_half)))
