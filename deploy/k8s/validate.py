"""Render kustomizations and check them offline: strict Kubernetes schemas plus the platform's deployment policy."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes_validate import utils as kubernetes_validate

K8S_DIR = Path(__file__).resolve().parent
OVERLAYS_DIR = K8S_DIR / "overlays"
# The kubectl shipped here is 1.32; its schemas know native gRPC probes (GA in 1.27) and the sleep pre-stop hook.
KUBERNETES_VERSION = "1.32"
RENDER_TIMEOUT_SECONDS = 60

# Custom resources ship no schema offline, so strict validation cannot judge them: they are skipped and listed.
SKIPPED_KINDS = frozenset({
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PodMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
    ("postgresql.cnpg.io", "Cluster"),
    ("postgresql.cnpg.io", "Database"),
})

# Where each workload kind keeps its pod template.
POD_TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
# Run-to-completion pods get no probes: nothing routes to them and a restart would not help.
RUN_TO_COMPLETION = frozenset({"Job", "CronJob"})

RULES: Mapping[str, str] = {
    "render": "the kustomization renders with `kubectl kustomize`",
    "schema": "the object passes strict schema validation (kubernetes-validate --strict)",
    "unknown-kind": "the object's kind has a schema or is a listed custom resource",
    "readiness-probe": "every long-running container has a readiness probe",
    "liveness-probe": "every long-running container has a liveness probe",
    "grpc-probe": "a container serving a port named grpc is probed with native gRPC probes on that port",
    "resource-requests": "every container requests cpu and memory",
    "resource-limits": "every container limits cpu and memory",
    "run-as-non-root": "every container runs with runAsNonRoot and a non-zero user",
    "read-only-root-fs": "every container has readOnlyRootFilesystem",
    "drop-all-capabilities": "every container drops ALL capabilities",
    "no-privilege-escalation": "every container sets allowPrivilegeEscalation: false and is not privileged",
    "seccomp-profile": "every container runs under the RuntimeDefault (or a Localhost) seccomp profile",
    "service-account-token": "no pod mounts a Kubernetes API token",
    "image-tag": "every image has a tag other than latest, or a digest",
    "network-policy": "every workload is selected by a NetworkPolicy aimed at it (not only namespace-wide ones)",
    "default-deny": "every namespace with workloads has a default-deny NetworkPolicy for ingress and egress",
    "service-selector": "every Service selector matches the pods of some workload",
}


@dataclass(frozen=True)
class Failure:
    """One broken rule on one object."""

    source: str
    obj: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.source}] {self.obj}: {self.rule}: {self.detail}"


@dataclass
class Report:
    """What validating one kustomization found."""

    source: str
    objects: int = 0
    failures: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def render(path: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize path` produces; raises RuntimeError with kubectl's message on failure."""
    kubectl = shutil.which("kubectl") or "/usr/bin/kubectl"
    result = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True,
                            timeout=RENDER_TIMEOUT_SECONDS, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip() or f"kubectl kustomize exited with {result.returncode}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def describe(obj: Mapping[str, Any]) -> str:
    """``Kind namespace/name``, or ``Kind name`` for cluster-scoped and namespace-less objects."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "?")
    return f"{obj.get('kind', '?')} {namespace}/{name}" if namespace else f"{obj.get('kind', '?')} {name}"


def api_group(obj: Mapping[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def check_schema(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(rule, detail) when the object fails strict schema validation or has no schema at all."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path) or "(top level)"
        return "schema", f"{where}: {error.message}"
    except kubernetes_validate.InvalidSchemaError as error:
        return "schema", f"the bundled schema for {obj.get('kind')} cannot be read: {error.message}"
    except kubernetes_validate.SchemaNotFoundError:
        return "unknown-kind", (f"no Kubernetes {KUBERNETES_VERSION} schema for {obj.get('apiVersion')} "
                                f"{obj.get('kind')}, and it is not a listed custom resource")
    return None


# ---- policy ---------------------------------------------------------------------------------------------------


def dig(data: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def pod_template(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    path = POD_TEMPLATE_PATHS.get(str(obj.get("kind")))
    template = dig(obj, path) if path else None
    return template if isinstance(template, Mapping) else None


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(dig(obj, ("metadata", "namespace")) or "")


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions, ANDed)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last_segment = image.rsplit("/", 1)[-1]
    if ":" not in last_segment:
        return f"image {image!r} has no tag (means latest)"
    if last_segment.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the mutable latest tag"
    return None


def container_problems(container: Mapping[str, Any], pod_spec: Mapping[str, Any],
                       needs_probes: bool) -> Iterator[tuple[str, str]]:
    """(rule, detail) for each per-container rule this container breaks."""
    name = container.get("name", "?")
    pod_security = pod_spec.get("securityContext") or {}
    security = container.get("securityContext") or {}

    def effective(key: str) -> Any:
        return security[key] if key in security else pod_security.get(key)

    if needs_probes:
        for rule, probe in (("readiness-probe", "readinessProbe"), ("liveness-probe", "livenessProbe")):
            if not container.get(probe):
                yield rule, f"container {name!r} has no {probe}"
        grpc_ports = [port.get("containerPort") for port in container.get("ports") or []
                      if str(port.get("name", "")).startswith("grpc")]
        for grpc_port in grpc_ports:
            for probe in ("readinessProbe", "livenessProbe"):
                spec = container.get(probe)
                if spec and dig(spec, ("grpc", "port")) != grpc_port:
                    yield "grpc-probe", (f"container {name!r} serves gRPC on {grpc_port} but its {probe} is not "
                                         f"`grpc: {{port: {grpc_port}}}`")
    resources = container.get("resources") or {}
    for rule, section in (("resource-requests", "requests"), ("resource-limits", "limits")):
        missing = [kind for kind in ("cpu", "memory") if kind not in (resources.get(section) or {})]
        if missing:
            yield rule, f"container {name!r} has no {section} for {', '.join(missing)}"
    if effective("runAsNonRoot") is not True or effective("runAsUser") == 0:
        yield "run-as-non-root", f"container {name!r} may run as root (runAsNonRoot not true, or runAsUser 0)"
    if security.get("readOnlyRootFilesystem") is not True:
        yield "read-only-root-fs", f"container {name!r} has a writable root filesystem"
    if "ALL" not in (dig(security, ("capabilities", "drop")) or []):
        yield "drop-all-capabilities", f"container {name!r} does not drop ALL capabilities"
    if security.get("allowPrivilegeEscalation") is not False or security.get("privileged") is True:
        yield "no-privilege-escalation", f"container {name!r} may escalate privileges"
    seccomp = dig(effective("seccompProfile") or {}, ("type",))
    if seccomp not in ("RuntimeDefault", "Localhost"):
        yield "seccomp-profile", f"container {name!r} runs with seccomp profile {seccomp or 'unset (Unconfined)'}"
    problem = image_problem(str(container.get("image", "")))
    if problem:
        yield "image-tag", f"container {name!r}: {problem}"


def workload_problems(obj: Mapping[str, Any], template: Mapping[str, Any],
                      service_accounts: Mapping[tuple[str, str], Mapping[str, Any]]) -> Iterator[tuple[str, str]]:
    pod_spec = template.get("spec") or {}
    needs_probes = obj.get("kind") not in RUN_TO_COMPLETION
    for container in pod_spec.get("containers") or []:
        yield from container_problems(container, pod_spec, needs_probes)
    for container in pod_spec.get("initContainers") or []:
        yield from container_problems(container, pod_spec, needs_probes=False)
    automount = pod_spec.get("automountServiceAccountToken")
    if automount is None:
        account = service_accounts.get((namespace_of(obj), str(pod_spec.get("serviceAccountName") or "default")))
        automount = account.get("automountServiceAccountToken") if account else None
    if automount is not False:
        yield "service-account-token", ("neither the pod nor its ServiceAccount sets "
                                        "automountServiceAccountToken: false")


def is_default_deny(policy: Mapping[str, Any]) -> bool:
    spec = policy.get("spec") or {}
    return (not spec.get("podSelector") and {"Ingress", "Egress"} <= set(spec.get("policyTypes") or [])
            and not spec.get("ingress") and not spec.get("egress"))


def check_policy(objects: Sequence[dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
    """(object, rule, detail) for every policy rule broken by the rendered objects taken together."""
    service_accounts = {(namespace_of(obj), str(dig(obj, ("metadata", "name")))): obj
                        for obj in objects if obj.get("kind") == "ServiceAccount"}
    policies = [obj for obj in objects if obj.get("kind") == "NetworkPolicy"]
    workloads = [(obj, template) for obj in objects if (template := pod_template(obj)) is not None]

    for obj, template in workloads:
        for rule, detail in workload_problems(obj, template, service_accounts):
            yield describe(obj), rule, detail
        labels = dig(template, ("metadata", "labels")) or {}
        # Namespace-wide policies (empty podSelector: default deny, DNS) select everything, so they prove nothing.
        aimed = [policy for policy in policies
                 if namespace_of(policy) == namespace_of(obj) and dig(policy, ("spec", "podSelector"))
                 and selector_matches(dig(policy, ("spec", "podSelector")), labels)]
        if not aimed:
            yield describe(obj), "network-policy", f"no NetworkPolicy selects its pods (labels {dict(labels)})"

    for namespace in sorted({namespace_of(obj) for obj, _ in workloads}):
        if not any(is_default_deny(policy) for policy in policies if namespace_of(policy) == namespace):
            yield (f"Namespace {namespace or '(default)'}", "default-deny",
                   "no NetworkPolicy with an empty podSelector, policyTypes [Ingress, Egress] and no allow rules")

    for service in (obj for obj in objects if obj.get("kind") == "Service"):
        selector = dig(service, ("spec", "selector"))
        if not selector:
            continue
        if not any(namespace_of(obj) == namespace_of(service)
                   and selector_matches({"matchLabels": selector}, dig(template, ("metadata", "labels")) or {})
                   for obj, template in workloads):
            yield describe(service), "service-selector", f"selector {dict(selector)} matches no workload's pods"


def validate_kustomization(path: Path, source: str | None = None) -> Report:
    """Render ``path`` and apply every check; the report lists failures and the custom resources skipped."""
    report = Report(source=source or path.name)
    try:
        objects = render(path)
    except (RuntimeError, subprocess.TimeoutExpired, yaml.YAMLError) as error:
        report.failures.append(Failure(report.source, str(path), "render", str(error).splitlines()[-1]))
        return report
    report.objects = len(objects)
    for obj in objects:
        if (api_group(obj), obj.get("kind")) in SKIPPED_KINDS:
            report.skipped.append(f"{obj.get('apiVersion')} {describe(obj)}")
            continue
        problem = check_schema(obj)
        if problem:
            report.failures.append(Failure(report.source, describe(obj), *problem))
    for obj_name, rule, detail in check_policy(objects):
        report.failures.append(Failure(report.source, obj_name, rule, detail))
    return report


def default_targets() -> list[Path]:
    return sorted(path for path in OVERLAYS_DIR.iterdir() if (path / "kustomization.yaml").is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.k8s.validate",
        description="Render kustomizations (default: every overlay) and validate them offline.",
        epilog="rules: " + "; ".join(f"{name}: {text}" for name, text in RULES.items()))
    parser.add_argument("--path", action="append", type=Path,
                        help="a kustomization directory to validate instead of the overlays (repeatable)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    targets = args.path or default_targets()
    failures = 0
    for target in targets:
        report = validate_kustomization(target)
        for skipped in report.skipped:
            print(f"[{report.source}] skipped schema check (custom resource, no schema offline): {skipped}")
        for failure in report.failures:
            print(failure)
        failures += len(report.failures)
        verdict = "ok" if not report.failures else f"{len(report.failures)} failure(s)"
        print(f"[{report.source}] {report.objects} objects, {len(report.skipped)} skipped, {verdict}")
    elapsed = time.perf_counter() - started
    print(f"{'FAILED' if failures else 'passed'}: {len(targets)} kustomization(s) against Kubernetes "
          f"{KUBERNETES_VERSION} in {elapsed:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
