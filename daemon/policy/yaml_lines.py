"""A YAML loader that remembers the line of every key and list item, and repeated keys.

An operator reads ``policies/retry.yaml:12``, not a path into parsed data, so the line of
each part has to be kept while parsing; PyYAML's ``SafeLoader`` drops it once the document
is built. Duplicate keys are kept too: YAML lets the later one win silently, which for a
policy is a mistake worth reporting.
"""

from __future__ import annotations

import yaml

__all__ = ["LineLoader", "PathKey"]

PathKey = tuple[str | int, ...]
"""A path into parsed data: mapping keys and list indexes from the top."""


class LineLoader(yaml.SafeLoader):
    """SafeLoader that also records the 1-based line of every mapping key and list item."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[PathKey, int] = {}
        self.duplicates: list[tuple[PathKey, int]] = []

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
