"""Reading rules.yaml so that every error can name its line.

The file is composed into PyYAML's node tree (which keeps line numbers) and the data is
constructed from that same tree; a validation error's location (``rules -> 3 -> when ->
subject``) is walked down the tree to the node it blames. The loader also removes YAML 1.1
surprises that bite people who are not programmers: ``no``/``on``/``off`` stay words
(not booleans) and ``08:00`` stays a time (not the number 480); duplicate keys, which
YAML silently lets the last one win, are reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# LibYAML's parser when installed (ten times faster: reload cost); resolvers stay Python's.
if TYPE_CHECKING:  # the two loaders offer the same interface; the stubs know SafeLoader's
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RulesYamlLoader(_SafeLoader):
    """SafeLoader with YAML 1.2-style booleans and no base-60 numbers."""


RulesYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                           "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RulesYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))
RulesYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*))$"), list("-+0123456789"))
RulesYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?)$"), list("-+0123456789"))


# An ops-edited file of rules: a few hundred rules are tens of kilobytes. Aliases share one
# node, so a "billion laughs" file of nine nested aliases is tiny as a tree and 10^9 values
# once anything (validation, `check`) walks it: the walk is counted first, without walking.
MAX_CHARS = 2_000_000
MAX_VALUES = 200_000


def _refuse_alias_bombs(root: Node) -> None:
    """Count the values the document expands to (shared nodes counted once per use)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[Node] = []
        if isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        if not children_done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        size = 1 + sum(sizes.get(id(c), 1) for c in children)
        if size > MAX_VALUES:
            raise YamlSyntaxError(node.start_mark.line + 1,
                                  f"the YAML expands to more than {MAX_VALUES:,} values "
                                  "(aliases of aliases?)")
        sizes[id(node)] = size


class YamlSyntaxError(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


@dataclass
class YamlDocument:
    """The constructed data plus its node tree, for line lookups."""

    data: Any
    root: Node | None

    @classmethod
    def parse(cls, text: str) -> YamlDocument:
        if len(text) > MAX_CHARS:
            raise YamlSyntaxError(1, f"the file is larger than {MAX_CHARS:,} characters")
        loader: RulesYamlLoader | None = None
        try:
            loader = RulesYamlLoader(text)  # checks for unprintable characters already
            root = loader.get_single_node()
            if root is not None:
                _refuse_alias_bombs(root)
            data = loader.construct_document(root) if root is not None else None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
            raise YamlSyntaxError(line, f"YAML syntax error: {problem}") from None
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            raise YamlSyntaxError(line, f"YAML syntax error: character {exc.character!r} is "
                                  "not allowed in YAML") from None
        except yaml.YAMLError as exc:
            raise YamlSyntaxError(1, f"YAML syntax error: {exc}") from None
        finally:
            if loader is not None:
                loader.dispose()
        return cls(data, root)

    def node(self, loc: Sequence[str | int], *, key: bool = False) -> Node | None:
        """The node a location points at (the key's node when ``key``); parts that are not
        in the file, such as pydantic's union labels, are skipped."""
        node = self.root
        for i, part in enumerate(loc):
            if isinstance(node, MappingNode):
                for key_node, value_node in node.value:
                    if isinstance(key_node, ScalarNode) and key_node.value == str(part):
                        node = key_node if key and i == len(loc) - 1 else value_node
                        break
            elif (isinstance(node, SequenceNode) and isinstance(part, int)
                  and 0 <= part < len(node.value)):
                node = node.value[part]
        return node

    def line(self, loc: Sequence[str | int], *, key: bool = False) -> int:
        node = self.node(loc, key=key)
        return node.start_mark.line + 1 if node is not None else 1

    def duplicate_keys(self) -> Iterator[tuple[tuple[str | int, ...], str, int]]:
        """(location of the mapping, key, line) for every key written twice in a mapping."""
        stack: list[tuple[tuple[str | int, ...], Node]] = (
            [((), self.root)] if self.root is not None else [])
        seen_nodes: set[int] = set()
        while stack:
            loc, node = stack.pop()
            if id(node) in seen_nodes:  # anchors and aliases share nodes
                continue
            seen_nodes.add(id(node))
            if isinstance(node, MappingNode):
                keys: set[str] = set()
                for key_node, value_node in node.value:
                    name = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
                    if name in keys and name != "<<":
                        yield loc, name, key_node.start_mark.line + 1
                    keys.add(name)
                    stack.append(((*loc, name), value_node))
            elif isinstance(node, SequenceNode):
                stack.extend(((*loc, i), child) for i, child in enumerate(node.value))


def read_text(path: Path) -> str:
    """The file's text; a missing or non-UTF-8 file is a syntax problem on line 1."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlSyntaxError(1, "file not found") from None
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(1, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise YamlSyntaxError(1, f"cannot read: {exc.strerror or exc}") from None
