"""The port the engine talks to: everything aomd asks of the cloud.

The engine depends on this ``Protocol`` only, so tests and the emulator-backed demo can
hand it the real :class:`daemon.cloud.client.AomClient` (or a fake) while the pure core never sees
HTTP at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from daemon.kernel.actions import DataArtsAction, OperationAction
from daemon.kernel.model import Execution, Workflow


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a successful write returned: the request id (for the journal) and the body."""

    request_id: str | None
    body: Any = None


@dataclass(frozen=True, slots=True)
class ExecuteResult:
    request_id: str | None
    execution_id: str


class CloudClient(Protocol):
    """Reads retry (bounded); writes never retry once sent and raise ``OutcomeUnknown``."""

    async def list_workflows(
        self, search: str | None = None, *, workflow_type: str | None = None
    ) -> list[Workflow]:
        """Every page of ListWorkflow."""
        ...

    async def list_executions(self, workflow_id: str) -> list[Execution]: ...

    async def get_execution(self, workflow_id: str, execution_id: str) -> Execution: ...

    async def operate(
        self, workflow_id: str, execution_id: str, action: OperationAction, node_id: str
    ) -> WriteResult: ...

    async def terminate(self, workflow_id: str, execution_id: str) -> WriteResult: ...

    async def set_trigger(self, workflow_id: str, enable: bool) -> WriteResult: ...

    async def execute_workflow(self, workflow_id: str) -> ExecuteResult: ...

    async def dataarts_task_action(
        self, task_id: str, action: DataArtsAction, workspace: str
    ) -> WriteResult: ...

    async def close(self) -> None: ...
