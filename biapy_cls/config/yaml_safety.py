"""A YAML reader for config files that refuses what would silently mislead or exhaust memory.

- A key given twice in one section (a second `DATA:` section, `EPOCHS` twice) is an error naming both
  lines: plain YAML lets the last one win silently, dropping a whole section.
- Anchors and aliases stay allowed (BiaPy configs may use them), but the document they expand to is
  bounded: a "billion laughs" file of nested aliases is refused instead of filling memory.
"""

from __future__ import annotations

import yaml

# A BiaPy config has a few hundred values; a million expanded nodes is far beyond any real file.
MAX_EXPANDED_NODES = 1_000_000


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, first_line: int, second_line: int):
        super().__init__(f"{key} given twice")
        self.key, self.first_line, self.second_line = key, first_line, second_line


class TooLarge(yaml.YAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (see the module docstring)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: merged keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader's own error for unhashable keys follows
            if key in seen:
                raise DuplicateKey(str(key), seen[key] + 1, key_node.start_mark.line + 1)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def expanded_size(node: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """The number of nodes the document has once every alias is expanded (stops counting past `limit`)."""
    memo: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        if id(n) in memo:
            return memo[id(n)]
        memo[id(n)] = 1  # a recursive alias counts once instead of looping
        if isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in n.value)
        else:
            total = 1
        memo[id(n)] = min(total, limit + 1)
        return memo[id(n)]

    return size(node)


def load_config_yaml(text: str):
    """Parse `text` like yaml.safe_load, with the checks of this module. Raises yaml.YAMLError subclasses."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node) > MAX_EXPANDED_NODES:
            raise TooLarge(f"its anchors and aliases expand to more than {MAX_EXPANDED_NODES:,} values")
        return loader.construct_document(node)
    finally:
        loader.dispose()
