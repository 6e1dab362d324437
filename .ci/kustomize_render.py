#!/usr/bin/env python3
"""Render a kustomization offline, for the subset of kustomize aomd's manifests use.

Why not the kustomize binary: CI machines may not have it and nothing may be downloaded
there. Supported: ``resources`` (files and directories with a kustomization.yaml),
``namespace``, ``labels`` (``pairs``; metadata only), and ``patches`` with ``path`` to a
strategic-merge patch (maps merge, ``null`` deletes a key, lists of maps merge by
``name``, ``$patch: delete`` removes a whole resource), and ``secretGenerator`` with
``files: [key=path]`` and ``options: {disableNameSuffixHash: true}``. Anything else is an
error, so the renderer never silently produces something kustomize would not.

Usage: kustomize_render.py DIR  -> multi-document YAML on stdout.
"""

from __future__ import annotations

import base64
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "patches",
    "secretGenerator",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
}

Doc = dict[str, Any]


class RenderError(Exception):
    pass


def _key(doc: Doc) -> tuple[str, str]:
    return doc.get("kind", ""), (doc.get("metadata") or {}).get("name", "")


def merge(base: Any, patch: Any) -> Any:
    """Strategic-merge ``patch`` into ``base`` (the subset described above)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = merge(out[k], v)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in [*base, *patch])
    ):
        out_list = [copy.deepcopy(x) for x in base]
        index = {x["name"]: i for i, x in enumerate(out_list)}
        for item in patch:
            if item.get("$patch") == "delete":
                if item["name"] in index:
                    out_list = [x for x in out_list if x["name"] != item["name"]]
                    index = {x["name"]: i for i, x in enumerate(out_list)}
                continue
            if item["name"] in index:
                out_list[index[item["name"]]] = merge(out_list[index[item["name"]]], item)
            else:
                out_list.append(copy.deepcopy(item))
                index[item["name"]] = len(out_list) - 1
        return out_list
    return copy.deepcopy(patch)


def _load_docs(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def _secrets(directory: Path, kfile: Path, generators: list[Any]) -> list[Doc]:
    out: list[Doc] = []
    for gen in generators:
        if set(gen) - {"name", "files", "options"} or gen.get("options") != {
            "disableNameSuffixHash": True
        }:
            raise RenderError(
                f"{kfile}: only secretGenerator name/files with disableNameSuffixHash: true"
            )
        data: dict[str, str] = {}
        for item in gen["files"]:
            key, _, rel = item.partition("=")
            path = directory / rel
            if not path.is_file():
                raise RenderError(f"{kfile}: secretGenerator {gen['name']}: no file {path}")
            data[key] = base64.b64encode(path.read_bytes()).decode()
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": gen["name"]},
                "type": "Opaque",
                "data": data,
            }
        )
    return out


def render(directory: Path) -> list[Doc]:
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
    unknown = set(k) - SUPPORTED
    if unknown:
        raise RenderError(f"{kfile}: unsupported fields {sorted(unknown)}")

    docs: list[Doc] = []
    for res in k.get("resources", []):
        target = (directory / res).resolve()
        docs.extend(render(target) if target.is_dir() else _load_docs(target))

    docs.extend(_secrets(directory, kfile, k.get("secretGenerator", [])))

    for p in k.get("patches", []):
        if set(p) != {"path"}:
            raise RenderError(f"{kfile}: only `patches: - path: FILE` is supported")
        for patch in _load_docs(directory / p["path"]):
            key = _key(patch)
            matches = [i for i, d in enumerate(docs) if _key(d) == key]
            if len(matches) != 1:
                raise RenderError(f"{kfile}: patch {p['path']} matches {len(matches)} resources")
            i = matches[0]
            if patch.get("$patch") == "delete":
                del docs[i]
            else:
                docs[i] = merge(docs[i], patch)

    ns = k.get("namespace")
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if ns and doc.get("kind") not in CLUSTER_SCOPED:
            meta["namespace"] = ns
        if ns and doc.get("kind") in {"RoleBinding", "ClusterRoleBinding"}:
            for subject in doc.get("subjects", []):
                if subject.get("kind") == "ServiceAccount":
                    subject["namespace"] = ns
        for entry in k.get("labels", []):
            if set(entry) - {"pairs"}:
                raise RenderError(f"{kfile}: only `labels: - pairs:` is supported")
            meta.setdefault("labels", {}).update(entry["pairs"])
    return docs


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: kustomize_render.py DIR", file=sys.stderr)
        return 2
    try:
        docs = render(Path(argv[1]))
    except (RenderError, OSError, yaml.YAMLError) as exc:
        print(f"kustomize_render: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
