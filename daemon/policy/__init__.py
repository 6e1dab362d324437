"""Execution policies: policy files (pydantic), loading with file:line errors, and ``decide``.

Import surface for the rest of aomd::

    from daemon.policy import (PolicySet, Rule, Action, Decision, decide, load_policy_dir,
                               load_policy_paths, validate_paths, json_schema)
"""

from daemon.policy.decide import (
    RECHECK_SOON,
    Action,
    Decision,
    decide,
    stopped_node,
    stopped_nodes,
)
from daemon.policy.file_spec import PolicyFile, RuleSpec
from daemon.policy.loader import load_policy_dir, load_policy_paths
from daemon.policy.observe import observed
from daemon.policy.policyset import PolicySet
from daemon.policy.rule import Backoff, Rule
from daemon.policy.schedule_spec import ScheduleSpec
from daemon.policy.schema import json_schema
from daemon.policy.scope import in_scope
from daemon.policy.validate import validate_paths

__all__ = [
    "RECHECK_SOON",
    "Action",
    "Backoff",
    "Decision",
    "PolicyFile",
    "PolicySet",
    "Rule",
    "RuleSpec",
    "ScheduleSpec",
    "decide",
    "in_scope",
    "json_schema",
    "load_policy_dir",
    "load_policy_paths",
    "observed",
    "stopped_node",
    "stopped_nodes",
    "validate_paths",
]
