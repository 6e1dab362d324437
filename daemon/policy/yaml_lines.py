"""A YAML loader that remembers the line of every key and list item, and repeated keys.

An operator reads ``policies/retry.yaml:12``, not a path into parsed data, so the line of
each part has to be kept while parsing; PyYAML's ``SafeLoader`` drops it once the document
is built. Duplicate keys are kept too: YAML lets the later one win silently, which for a
policy is a mistake worth reporting.

The loader also refuses, before anything is expanded, what would exhaust the stack or the
memory: nesting deeper than ``MAX_DEPTH``, more than ``MAX_ALIASES`` aliases, a recursive
alias (``x: &x [*x]``) and documents whose aliases expand to more than ``MAX_NODES``
nodes (the "billion laughs" alias bomb: 10^7 nodes held 2.2 GB for a 1 kB file).
"""

from __future__ import annotations

import yaml

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_NODES", "LineLoader", "PathKey", "YamlLimitError"]

MAX_DEPTH = 64
"""Policies nest about 6 levels; PyYAML composes recursively and would overflow at ~300."""
MAX_ALIASES = 1_000
MAX_NODES = 200_000
"""Nodes after alias expansion; the largest realistic policy set is about 30,000."""

PathKey = tuple[str | int, ...]
"""A path into parsed data: mapping keys and list indexes from the top."""


class YamlLimitError(yaml.MarkedYAMLError):
    """The document is valid YAML but too deep, too aliased or too big once expanded."""


class LineLoader(yaml.SafeLoader):
    """SafeLoader that also records the 1-based line of every mapping key and list item."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[PathKey, int] = {}
        self.duplicates: list[tuple[PathKey, int]] = []
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlLimitError(
                    problem=f"more than {MAX_ALIASES} aliases (*name); expected fewer aliases "
                    "(write the values out, or split the file)",
                    problem_mark=self._event_mark(),
                )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(
                    problem=f"nested deeper than {MAX_DEPTH} levels; expected a flatter document",
                    problem_mark=self._event_mark(),
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _event_mark(self) -> yaml.Mark:
        return self.peek_event().start_mark  # type: ignore[no-untyped-call, no-any-return]  # PyYAML's stubs leave peek_event untyped

    def check_expansion(self, root: yaml.Node) -> None:
        """Raise ``YamlLimitError`` for a recursive alias or an expansion over ``MAX_NODES``.

        Iterative, with each shared node's expanded size computed once, so the check itself
        costs time linear in the (unexpanded) document."""
        size: dict[int, int] = {}
        on_path: set[int] = set()
        stack: list[tuple[yaml.Node, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            key = id(node)
            children = _children(node)
            if done:
                on_path.discard(key)
                total = 1 + sum(size[id(c)] for c in children)
                if total > MAX_NODES:
                    raise YamlLimitError(
                        problem=f"aliases expand this document to more than {MAX_NODES:,} "
                        "values (an alias bomb?); expected a document that is this size "
                        "when written out",
                        problem_mark=node.start_mark,
                    )
                size[key] = total
                continue
            if key in size:
                continue
            if key in on_path:
                raise YamlLimitError(
                    problem="recursive alias: a value contains itself (such as x: &x [*x]); "
                    "expected aliases to refer to finished values only",
                    problem_mark=node.start_mark,
                )
            on_path.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)

    def record(self, node: yaml.Node, path: PathKey) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[object] = set()
            for key_node, value_node in node.value:
                key: object = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str) or key == "<<":
                    continue
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark.line + 1))
                seen.add(key)
                self.lines[child] = key_node.start_mark.line + 1
                self._record_children(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                self._record_children(item, (*path, i))

    def _record_children(self, node: yaml.Node, path: PathKey) -> None:
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            self.record(node, path)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
