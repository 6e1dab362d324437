#!/usr/bin/env python3
"""Validate deploy/kubernetes offline: render base and overlays, check every manifest
against the Kubernetes JSON schemas (kubernetes-validate, strict: unknown fields fail),
check the properties aomd relies on, and load the embedded settings.toml and policies
with aomd's own loaders. Exit 0 when all is well, 1 otherwise; one line per finding.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from kustomize_render import RenderError, render

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
TARGETS = {
    "base": K8S / "base",
    "ha": K8S / "overlays" / "ha",
    "sharded": K8S / "overlays" / "sharded",
}
K8S_VERSION = "1.30.0"

Doc = dict[str, Any]
errors: list[str] = []


def fail(msg: str) -> None:
    errors.append(msg)
    print(f"FAIL {msg}")


def find(docs: list[Doc], kind: str, name: str) -> Doc | None:
    for d in docs:
        if d.get("kind") == kind and d.get("metadata", {}).get("name") == name:
            return d
    return None


def normalize(value: Any) -> Any:
    """Order-insensitive form for named lists (kustomize reorders merged items)."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [normalize(v) for v in value]
        if all(isinstance(x, dict) and "name" in x for x in items):
            return sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
        return items
    return value


def cross_check(target: str, path: Path, docs: list[Doc]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print(f"SKIP {target}: kubectl not found; no cross-check of the renderer")
        return
    proc = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        fail(f"{target}: kubectl kustomize failed: {proc.stderr.strip()}")
        return
    theirs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    a = {key(d): normalize(d) for d in docs}
    b = {key(d): normalize(d) for d in theirs}
    if a != b:
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        fail(f"{target}: our renderer and kubectl kustomize differ on {diff}")
    else:
        print(f"ok   {target}: renderer output equals kubectl kustomize")


def check_schema(target: str, docs: list[Doc]) -> None:
    for d in docs:
        name = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            fail(f"{target}: {name}: {path}: {exc.message}")
        except Exception as exc:  # schema not found and the like
            fail(f"{target}: {name}: {type(exc).__name__}: {exc}")
    print(f"ok   {target}: {len(docs)} manifests checked against Kubernetes {K8S_VERSION} schemas")


def check_properties(target: str, docs: list[Doc]) -> None:
    dep = find(docs, "Deployment", "aomd")
    if dep is None:
        fail(f"{target}: no Deployment/aomd")
        return
    pod = dep["spec"]["template"]["spec"]
    (c,) = [c for c in pod["containers"] if c["name"] == "aomd"]
    checks = {
        "liveness probe on /healthz": c.get("livenessProbe", {}).get("httpGet", {}).get("path")
        == "/healthz",
        "readiness probe on /readyz": c.get("readinessProbe", {}).get("httpGet", {}).get("path")
        == "/readyz",
        "pod runAsNonRoot": pod.get("securityContext", {}).get("runAsNonRoot") is True,
        "readOnlyRootFilesystem": c.get("securityContext", {}).get("readOnlyRootFilesystem")
        is True,
        "no privilege escalation": c.get("securityContext", {}).get("allowPrivilegeEscalation")
        is False,
        "capabilities dropped": c.get("securityContext", {}).get("capabilities", {}).get("drop")
        == ["ALL"],
        "resources set": bool(c.get("resources", {}).get("requests"))
        and bool(c.get("resources", {}).get("limits")),
        "journal volume at /var/lib/aomd": any(
            m["mountPath"] == "/var/lib/aomd" for m in c.get("volumeMounts", [])
        ),
        "Role for leases": find(docs, "Role", "aomd-leader-election") is not None,
        "Secret for credentials": find(docs, "Secret", "aomd-credentials") is not None,
    }
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    replicas = dep["spec"].get("replicas", 1)
    if target in ("ha", "sharded"):
        checks["2 replicas" if target == "ha" else "3 replicas"] = replicas == (
            2 if target == "ha" else 3
        )
        checks["leader election on"] = env.get("AOMD_LEADER__ENABLED") == "true"
        checks["service-account token mounted"] = pod.get("automountServiceAccountToken") is True
        checks["shared journal from the Secret aomd-journal"] = any(
            e["name"] == "AOMD_JOURNAL__URL" for e in c.get("env", [])
        )
        if target == "sharded":
            checks["sharding on"] = env.get("AOMD_LEADER__SHARDED") == "true"
            role = find(docs, "Role", "aomd-leader-election") or {}
            verbs = {v for rule in role.get("rules", []) for v in rule.get("verbs", [])}
            checks["Role may list Leases"] = "list" in verbs
    else:
        checks["1 replica, Recreate"] = (
            replicas == 1 and dep["spec"].get("strategy", {}).get("type") == "Recreate"
        )
    for what, ok in checks.items():
        if not ok:
            fail(f"{target}: {what}")
    print(f"ok   {target}: {sum(checks.values())}/{len(checks)} deployment properties hold")


def check_aomd_config(target: str, docs: list[Doc]) -> None:
    sys.path.insert(0, str(ROOT))
    from daemon.kernel.errors import ConfigError
    from daemon.policy.loader import load_policy_dir
    from daemon.settings import Settings

    cm = find(docs, "ConfigMap", "aomd-settings")
    if cm is None:
        fail(f"{target}: no ConfigMap/aomd-settings")
    else:
        try:
            Settings(**tomllib.loads(cm["data"]["settings.toml"]))
            print(f"ok   {target}: settings.toml loads")
        except Exception as exc:
            fail(f"{target}: settings.toml: {exc}")
    pol = find(docs, "ConfigMap", "aomd-policies")
    if pol is None:
        fail(f"{target}: no ConfigMap/aomd-policies")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for fname, text in pol["data"].items():
            (Path(tmp) / fname).write_text(text, encoding="utf-8")
        try:
            load_policy_dir(tmp)
            print(f"ok   {target}: policies load ({', '.join(sorted(pol['data']))})")
        except ConfigError as exc:
            fail(f"{target}: policies: {exc}")


def check_no_placeholder_credentials() -> None:
    """Without the operator's credential files, rendering must fail and name the file,
    never produce a Secret with placeholder values."""
    base = TARGETS["base"]
    if (base / "credentials" / "ak").exists():
        print("SKIP credentials: deploy/kubernetes/base/credentials/ak exists on this machine")
        return
    try:
        render(base)
    except RenderError as exc:
        if "credentials/ak" in str(exc):
            print("ok   base: refuses to render without credentials/ak and credentials/sk")
        else:
            fail(f"base: rendering without credentials failed for another reason: {exc}")
        return
    fail("base: rendered without credential files (placeholder credentials?)")


def main() -> int:
    check_no_placeholder_credentials()
    with tempfile.TemporaryDirectory() as tmp:
        # a copy with stand-in credential files, as an operator's checkout would have
        tree = Path(tmp) / "kubernetes"
        shutil.copytree(K8S, tree)
        for name in ("ak", "sk"):
            (tree / "base" / "credentials" / name).write_text(f"stand-in-{name}")
        for target, original in TARGETS.items():
            path = tree / original.relative_to(K8S)
            docs = render(path)
            check_schema(target, docs)
            check_properties(target, docs)
            check_aomd_config(target, docs)
            cross_check(target, path, docs)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
