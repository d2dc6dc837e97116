"""The README's configuration table and the Kubernetes manifests name exactly the settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from deploy.k8s.validate import render
from scripts.settings_table import markdown, rows

ROOT = Path(__file__).resolve().parents[3]
SERVICE_PREFIXES = ("IDENTITY_", "PAYMENT_", "WALLET_", "DVC_")


def test_readme_configuration_table_is_the_one_the_code_describes():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", readme, re.S)
    assert block, "README.md lost its settings-table markers"
    assert block.group(1).strip() == markdown().strip(), "regenerate with: python scripts/settings_table.py"


def test_every_setting_the_manifests_pass_to_a_container_exists_in_the_code():
    known = {variable for variable, _, _ in rows()}
    passed: set[str] = set()
    for obj in render(ROOT / "deploy" / "k8s" / "overlays" / "prod"):
        if obj.get("kind") == "ConfigMap":
            passed |= {key for key in (obj.get("data") or {}) if key.startswith(SERVICE_PREFIXES)}
        template = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in template.get("containers", []) + template.get("initContainers", []):
            passed |= {env["name"] for env in container.get("env", []) if env["name"].startswith(SERVICE_PREFIXES)}
    loadtest_only = {name for name in passed if name.startswith("DVC_LOADTEST_")}
    unknown = sorted(passed - known - loadtest_only)
    assert not unknown, f"manifests set variables no service reads: {unknown}"
    production = {"IDENTITY_ENVIRONMENT", "PAYMENT_ENVIRONMENT", "WALLET_ENVIRONMENT", "PAYMENT_RECEIPT_KEY_FILE"}
    assert production | {"WALLET_S3_ENDPOINT", "DVC_JWKS_URL"} <= passed
