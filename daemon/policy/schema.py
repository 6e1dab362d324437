"""The JSON Schema of a policy file, for editors and ``aomd schema``.

Generated from the same pydantic models that validate the files, so completion in an
editor can never disagree with what ``aomd validate`` accepts.
"""

from __future__ import annotations

from typing import Any

from daemon.policy.file_spec import PolicyFile

__all__ = ["json_schema"]


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one policy file."""
    schema = PolicyFile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://aomd.example/policy.schema.json",
        **schema,
    }
