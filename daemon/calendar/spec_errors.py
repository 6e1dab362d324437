"""Cross-field checks that still speak when a field of the same model is invalid.

Pydantic runs a model's "after" validators only once every field validated, so a file
with a bad ``action`` and both ``cron`` and ``ics`` used to report the action alone: the
operator fixed it, ran ``aomd validate`` again, and only then heard of the second
problem. A "wrap" validator built with ``also_when_invalid`` checks the raw input as
well whenever field validation failed, and reports both in the one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["also_when_invalid", "exactly_one_raw"]

M = TypeVar("M")


def exactly_one_raw(data: Any, first: str, second: str, message: str) -> str | None:
    """``message`` when the raw mapping has both keys or neither (a None value counts as
    absent, as the models' defaults do)."""
    if not isinstance(data, Mapping):
        return None
    has_first = data.get(first) is not None
    has_second = data.get(second) is not None
    return message if has_first == has_second else None


def also_when_invalid(data: Any, handler: Callable[[Any], M], message: str | None) -> M:
    """``handler(data)``; if that fails and the raw ``message`` (a cross-field problem
    found in ``data``) is not already among the errors, raise them with it added."""
    try:
        return handler(data)
    except ValidationError as exc:
        errors = exc.errors()
        if message is None or any(not e["loc"] and message in e["msg"] for e in errors):
            raise
        details: list[InitErrorDetails] = []
        for e in errors:
            detail: InitErrorDetails
            if e["type"] in ("value_error", "assertion_error"):
                # rebuilt from its final text: its context may be one of ours (nested)
                text = PydanticCustomError(e["type"], "{text}", {"text": e["msg"]})
                detail = {"type": text, "loc": e["loc"], "input": e["input"]}
            else:
                detail = {"type": e["type"], "loc": e["loc"], "input": e["input"]}
                if "ctx" in e:
                    detail["ctx"] = e["ctx"]
            details.append(detail)
        details.append(
            {
                "type": PydanticCustomError(
                    "value_error", "Value error, {problem}", {"problem": message}
                ),
                "loc": (),
                "input": data,
            }
        )
        raise ValidationError.from_exception_data(exc.title, details) from None
