"""Static lint of deploy/docker/Dockerfile and .dockerignore (Docker cannot build here): pins, user, stages, context."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
SERVICES = ("identity_service", "payment_service", "wallet_service")
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "clang", "libc6-dev", "python3-dev", "libpq-dev")
# What the services import at run time (requirements.in's direct dependencies); never to be excluded.
RUNTIME_PACKAGES = ("grpcio", "grpcio-health-checking", "grpcio-reflection", "grpcio-status", "protobuf",
                    "SQLAlchemy", "alembic", "psycopg", "psycopg-binary", "PyJWT", "cryptography", "Flask",
                    "requests", "minio", "prometheus_client", "qrcode", "pillow", "PyYAML", "locust")


@dataclass
class Stage:
    """One FROM ... section: its base image, alias and instructions (continuation lines joined)."""

    image: str
    alias: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [argument for instruction, argument in self.instructions if instruction == keyword]


@cache
def stages() -> tuple[Stage, ...]:
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    parsed: list[Stage] = []
    for line in logical:
        keyword, _, argument = line.partition(" ")
        if keyword.upper() == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", argument.strip(), re.IGNORECASE)
            assert match, f"unparsable FROM line: {line}"
            parsed.append(Stage(image=match.group(1), alias=match.group(2) or ""))
        elif parsed:
            parsed[-1].instructions.append((keyword.upper(), argument.strip()))
    return tuple(parsed)


def test_every_base_image_is_python_311_slim_bookworm_pinned_by_version() -> None:
    for stage in stages():
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", stage.image), stage.image
    assert len({stage.image for stage in stages()}) == 1, "build and runtime share one base, so wheels match"


def test_multi_stage_with_stub_generation_in_the_build_stage_only() -> None:
    build, *_, final = stages()
    assert len(stages()) >= 2
    assert any("scripts/gen_protos.py" in run for run in build.arguments("RUN"))
    assert not any("gen_protos" in run or "pip install" in run for run in final.arguments("RUN"))
    copies = final.arguments("COPY")
    assert any(copy.startswith(f"--from={build.alias} ") and ".gen" in copy for copy in copies)
    assert not any("/opt/tools" in copy for copy in copies), "the protoc venv stays in the build stage"


def test_final_stage_has_no_build_tools() -> None:
    final = stages()[-1]
    for run in final.arguments("RUN"):
        assert not re.search(r"\b(apt-get|apt|apk)\b.*\binstall\b", run), "final stage installs packages"
        for tool in BUILD_TOOLS:
            assert not re.search(rf"(^|\s){re.escape(tool)}(\s|$)", run), f"final stage mentions {tool}"


def test_final_stage_runs_as_the_numeric_non_root_user_the_pods_expect() -> None:
    final = stages()[-1]
    users = final.arguments("USER")
    assert users, "final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    patch = yaml.safe_load((ROOT / "deploy/k8s/components/pod-defaults/security.yaml").read_text())
    assert patch["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
    assert any(f"--uid {uid}" in run for run in final.arguments("RUN")), "the user exists in /etc/passwd"


def test_service_build_arg_selects_the_package_copied() -> None:
    final = stages()[-1]
    assert "SERVICE" in final.arguments("ARG")
    assert any(copy.split()[0] == "${SERVICE}" for copy in final.arguments("COPY"))
    validation = " ".join(final.arguments("RUN"))
    for service in (*SERVICES, "loadtests"):
        assert service in validation, f"SERVICE={service} is accepted"


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches everything below a matched dir."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
        candidates = list(prefixes)  # the last prefix is the path itself
        if pattern.startswith("**/"):
            candidates += parts
            pattern = pattern[3:]
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            excluded = not negate
    return excluded


def test_every_file_copied_from_the_context_exists_and_is_not_ignored() -> None:
    sources: list[str] = []
    for stage in stages():
        for copy in stage.arguments("COPY"):
            if copy.startswith("--from="):
                continue
            *items, _destination = copy.split()
            sources += items
    expanded = [item.replace("${SERVICE}", service) for item in sources
                for service in (SERVICES if "${SERVICE}" in item else ("",))]
    assert "requirements.lock" in expanded and "proto" in expanded
    for item in expanded:
        assert (ROOT / item).exists(), f"COPY {item}: not in the repository"
        assert not dockerignore_excludes(item), f"COPY {item}: excluded by .dockerignore"


def test_dockerignore_keeps_host_state_out_of_the_context() -> None:
    for path in (".venv/bin/python", ".git/config", ".gen/dvc/__init__.py", ".data/test.env", "tests/unit/x.py",
                 "payment_service/__pycache__/x.pyc", "deploy/k8s/secrets.example.yaml"):
        assert dockerignore_excludes(path), path
    assert not dockerignore_excludes("payment_service/domain/vietqr.py")


def test_runtime_excludes_name_only_dev_tools_that_exist_in_the_lock() -> None:
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    patterns = (ROOT / "deploy/docker/runtime-excludes.txt").read_text().splitlines()
    # grep -f treats an empty line as "match everything": the runtime venv would be empty.
    assert patterns and all(pattern.strip() for pattern in patterns)
    for pattern in patterns:
        assert any(re.search(pattern, line, re.IGNORECASE) for line in lock), f"{pattern!r} matches nothing"
    for package in RUNTIME_PACKAGES:
        line = f"{package}=="
        assert not any(re.search(pattern, line, re.IGNORECASE) for pattern in patterns), f"{package} excluded"
        assert any(entry.lower().startswith(line.lower()) for entry in lock), f"{package} not pinned in the lock"
    tools = re.search(r"grep -iE '(\^\([^']+\)==)' requirements\.lock > tools\.lock",
                      " ".join(stages()[0].arguments("RUN")))
    assert tools, "the build stage pins its protoc tools from the lock"
    for package in ("grpcio-tools", "mypy-protobuf", "protobuf"):
        assert any(re.match(tools.group(1), entry, re.IGNORECASE) for entry in lock if entry.startswith(package))
