"""The action vocabulary: what a rule may ask for and what the cloud API can do.

One definition, because the policy parser, the frozen rules, the executor's callers,
the lost-reply resolution, the client and the emulator all speak it; a word added in
one place and not another would be a rule that validates but never acts.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

OperationAction = Literal["restart", "skip", "continue"]
"""The ``action`` query values of StartPausingWorkflowExecutions (seed 001)."""
ActionKind = Literal["restart", "skip", "continue", "terminate", "notify"]
"""What an execution rule may do: an operation, a terminate (seed 003), or tell a person."""
FallbackKind = Literal["skip", "terminate", "leave"]
"""What a rule does once its attempts or deadline are used up."""
DataArtsAction = Literal["start", "schedule", "stop"]
"""DataArts metadata-collection task actions (seed 004, values assumed)."""

OPERATIONS: Final = frozenset(get_args(OperationAction))
EXECUTION_WRITES: Final = OPERATIONS | {"terminate"}
"""Writes to one execution whose outcome a read of the execution can tell."""
