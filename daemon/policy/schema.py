"""The JSON Schema of a policy file, for editors and ``aomd schema``.

Generated from the same pydantic models that validate the files, so completion in an
editor cannot disagree with what ``aomd validate`` accepts. Where a model accepts a
shorthand through a "before" validator (a single value for a list, a path for an ``ics``
object), the type declares the wider form next to the validator; the one shorthand that
lives on the file level (``schedules`` as a mapping) is added here.
``tests/unit/policy/test_schema_agrees.py`` checks both directions with ``jsonschema``.
"""

from __future__ import annotations

import copy
from typing import Any

from daemon.policy.file_spec import PolicyFile

__all__ = ["json_schema"]


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one policy file."""
    schema = PolicyFile.model_json_schema()
    _schedules_mapping(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://aomd.example/policy.schema.json",
        **schema,
    }


def _schedules_mapping(schema: dict[str, Any]) -> None:
    """``schedules: {name: {...}}`` is accepted by ``PolicyFile._schedules_mapping``: each
    value is a schedule whose ``name`` may be left out (it is the key)."""
    defs = schema["$defs"]
    body = copy.deepcopy(defs["ScheduleSpec"])
    body["required"] = [r for r in body.get("required", []) if r != "name"]
    body["title"] = "ScheduleBody"
    body["description"] = "A schedule under its name (the key); 'name' may be left out."
    defs["ScheduleBody"] = body
    prop = schema["properties"]["schedules"]
    listed = {k: v for k, v in prop.items() if k not in ("title", "description", "default")}
    prop.clear()
    prop.update(
        {
            "title": "Schedules",
            "description": "Scheduled runs: a list, or a mapping of name -> schedule.",
            "default": [],
            "anyOf": [
                listed,
                {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/ScheduleBody"},
                },
            ],
        }
    )
