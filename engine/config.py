"""The configuration model: an immutable tree of configuration lines, and changes to it.

A node is one line of `show running-config` (`hostname myrouter`, `crypto ca trustpoint myca`)
with the lines under it. Each node sits under a *key*: the words that name what the line sets,
so that setting it again replaces it (`hostname`, `enrollment` for both `enrollment url ...` and
`enrollment terminal`, `crypto ca trustpoint myca`). Keys come from the command grammar.

A `Change` is `(path, old, new)`: the line at `path` goes from `old` to `new` (None = absent).
Every edit, commit and rollback is a list of such changes, so the inverse of a commit is its
changes reversed, each with old and new swapped. Removing a node with children is expressed as
the removal of each child first, then of the node: inverses then restore the whole subtree.

Trees are never mutated after they are built; `apply` returns a new tree sharing what did not
change. `Node` and `ConfigTree` are slotted but not frozen dataclasses, immutable by convention
(nothing assigns their fields): replay builds one of each per change, and a frozen dataclass
costs five times as much to build.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

Path = tuple[str, ...]


@dataclass(slots=True)
class Node:
    """One configuration line and the lines of its submode, by key."""

    line: str
    children: Mapping[str, Node] = field(default_factory=lambda: _EMPTY)


_EMPTY: Mapping[str, Node] = MappingProxyType({})


class Change(NamedTuple):
    """`(path, old, new)`. A named tuple, so the stored form of a commit's changes (tuples of
    `(path, old, new)`) becomes Change objects with one `_make` each during replay."""

    path: Path
    old: str | None
    new: str | None

    def inverse(self) -> Change:
        return Change(self.path, self.new, self.old)

    def to_wire(self) -> tuple[tuple[str, ...], str | None, str | None]:
        return (tuple(self.path), self.old, self.new)

    @classmethod
    def from_wire(cls, raw: tuple[tuple[str, ...], str | None, str | None]) -> Change:
        path, old, new = raw
        return cls(tuple(path), old, new)


class ConfigConflict(ValueError):
    """A change does not apply: its `old` is not what the tree holds (a bug in the caller)."""


@dataclass(slots=True)
class ConfigTree:
    """A configuration: its top-level lines by key, each with its submode's lines."""

    roots: Mapping[str, Node] = field(default_factory=lambda: _EMPTY)

    def node(self, path: Path) -> Node | None:
        nodes = self.roots
        found: Node | None = None
        for key in path:
            found = nodes.get(key)
            if found is None:
                return None
            nodes = found.children
        return found

    def line(self, path: Path) -> str | None:
        n = self.node(path)
        return None if n is None else n.line

    def children(self, path: Path = ()) -> Mapping[str, Node]:
        if not path:
            return self.roots
        n = self.node(path)
        return _EMPTY if n is None else n.children

    def apply(self, change: Change) -> ConfigTree:
        if self.line(change.path) != change.old:
            raise ConfigConflict(f"{change.path}: expected {change.old!r}, "
                                 f"found {self.line(change.path)!r}")
        return ConfigTree(_apply(self.roots, change.path, change.new))

    def apply_all(self, changes: Iterable[Change]) -> ConfigTree:
        tree = self
        for c in changes:
            tree = tree.apply(c)
        return tree

    def removal(self, path: Path) -> list[Change]:
        """The changes that remove the node at `path` and everything under it."""
        n = self.node(path)
        if n is None:
            return []
        out: list[Change] = []
        for key in n.children:
            out.extend(self.removal((*path, key)))
        out.append(Change(path, n.line, None))
        return out

    def walk(self, path: Path = ()) -> Iterator[tuple[Path, Node]]:
        for key, n in self.children(path).items():
            yield (*path, key), n
            yield from self.walk((*path, key))


def _apply(nodes: Mapping[str, Node], path: Path, new: str | None) -> Mapping[str, Node]:
    key, rest = path[0], path[1:]
    out = dict(nodes)
    if rest:
        parent = nodes.get(key)
        if parent is None:
            raise ConfigConflict(f"no parent {key!r} for {rest}")
        out[key] = Node(parent.line, _apply(parent.children, rest, new))
    elif new is None:
        child = out.pop(key, None)
        if child is not None and child.children:
            raise ConfigConflict(f"{key!r} still has children; remove them first")
    else:
        old = nodes.get(key)
        out[key] = Node(new, old.children if old is not None else _EMPTY)
    return MappingProxyType(out)


class OwnedConfig(ConfigTree):
    """A running configuration that one replay loop owns alone (engine.state.replay_rows):
    its top-level mapping is a private dict that `apply_wire` changes in place, instead of a
    new tree per change. The nodes it was given are the same immutable ones, never changed:
    a top-level line it sets is a node of its own (`_OwnedNode`), whose line a later change
    sets in place; below the top level a change builds a new path as `apply` does, and the
    dict keeps the order `apply` would give it.
    `frozen` turns it into a plain ConfigTree when the loop ends; nobody else ever sees it."""

    __slots__ = ()

    @classmethod
    def of(cls, tree: ConfigTree) -> OwnedConfig:
        return cls(dict(tree.roots))

    def apply_wire(self, changes: Iterable[tuple[Path, str | None, str | None]]) -> None:
        """`apply_all` of stored changes `(path, old, new)`, in place, with the same checks."""
        roots: dict[str, Node] = self.roots  # type: ignore[assignment]  # `of` made a dict
        for path, old, new in changes:
            key = path[0]
            node = roots.get(key)
            if len(path) > 1:
                self._apply_below(roots, node, path, old, new)
                continue
            if (node.line if node is not None else None) != old:
                raise ConfigConflict(f"{path}: expected {old!r}, found {self.line(path)!r}")
            if new is not None:
                if type(node) is _OwnedNode:  # made by this loop: its own to change
                    node.line = new
                else:
                    roots[key] = _OwnedNode(new, node.children if node is not None else _EMPTY)
            elif node is not None:
                if node.children:
                    raise ConfigConflict(f"{key!r} still has children; remove them first")
                del roots[key]

    def _apply_below(self, roots: dict[str, Node], parent: Node | None, path: Path,
                     old: str | None, new: str | None) -> None:
        """A change below the top level: a new path down to it, as `apply` builds."""
        found = self.line(path)
        if found != old:
            raise ConfigConflict(f"{path}: expected {old!r}, found {found!r}")
        if parent is None:
            raise ConfigConflict(f"no parent {path[0]!r} for {path[1:]}")
        roots[path[0]] = Node(parent.line, _apply(parent.children, path[1:], new))

    def frozen(self) -> ConfigTree:
        return ConfigTree(MappingProxyType({
            key: Node(node.line, node.children) if type(node) is _OwnedNode else node
            for key, node in self.roots.items()}))


class _OwnedNode(Node):
    """A top-level node an OwnedConfig made, which nobody else has seen: the next change of
    its line changes it in place (a commit per hostname costs no new node). `frozen` hands
    out plain Nodes in their place. Equal to a Node of the same line and children, as the
    Node it stands for would be."""

    __slots__ = ()
    __hash__ = Node.__hash__  # none: a Node is mutable, so unhashable

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return self.line == other.line and self.children == other.children


def diff(before: ConfigTree, after: ConfigTree) -> list[Change]:
    """Changes that turn `before` into `after` (removals children-first, additions parent-first)."""
    out: list[Change] = []
    _diff(before, after, (), out)
    return out


def _diff(before: ConfigTree, after: ConfigTree, path: Path, out: list[Change]) -> None:
    b, a = before.children(path), after.children(path)
    for key in b:
        if key not in a:
            out.extend(before.removal((*path, key)))
    for key, node in a.items():
        old = b.get(key)
        if old is None or old.line != node.line:
            out.append(Change((*path, key), None if old is None else old.line, node.line))
        _diff(before, after, (*path, key), out)
