"""The resource tree (a data file, like Magento's acl.xml) and grant expansion."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources as importlib_resources
from typing import Any

ALL = "Magento_Backend::all"
ANONYMOUS = "anonymous"
SELF = "self"
# Tillkey's addition: an admin's own account (e.g. revoking their own tokens). Magento's `self`
# stays customer-only, so admin-only self-service needs its own id.
ADMIN_SELF = "admin_self"
SPECIAL = frozenset({ANONYMOUS, SELF, ADMIN_SELF})


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    title: str
    parent: str | None
    children: tuple[str, ...]


class ResourceTree:
    """Resource ids in a tree. A grant of a node covers its subtree; ALL covers everything."""

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes

    @classmethod
    def load(cls) -> ResourceTree:
        text = importlib_resources.files("tillkey.access").joinpath("resources.json").read_text("utf-8")
        nodes: dict[str, Node] = {}

        def walk(items: list[dict[str, Any]], parent: str | None) -> None:
            for item in items:
                kids = item.get("children", [])
                if item["id"] in nodes or item["id"] in SPECIAL:
                    raise ValueError(f"resource id {item['id']!r} is defined twice")
                nodes[item["id"]] = Node(item["id"], item["title"], parent, tuple(k["id"] for k in kids))
                walk(kids, item["id"])

        walk(json.loads(text)["resources"], None)
        return cls(nodes)

    def __contains__(self, resource_id: object) -> bool:
        return resource_id in self.nodes

    def subtree(self, resource_id: str) -> set[str]:
        out = {resource_id}
        stack = list(self.nodes[resource_id].children)
        while stack:
            rid = stack.pop()
            out.add(rid)
            stack.extend(self.nodes[rid].children)
        return out

    def expand(self, granted: Iterable[str]) -> tuple[frozenset[str], bool]:
        """Expand grants into every resource they cover. Returns (resources, grants_everything)."""
        out: set[str] = set()
        everything = False
        for rid in granted:
            if rid == ALL:
                everything = True
            if rid in self.nodes:
                out |= self.subtree(rid)
        return frozenset(out), everything

    def roots_of(self, resources: Iterable[str]) -> tuple[str, ...]:
        """The fewest ids that expand back to `resources` (a set closed under subtrees, as every
        expanded grant is): those whose parent is not in it."""
        held = set(resources)
        return tuple(sorted(r for r in held if r in self.nodes and self.nodes[r].parent not in held))

    def unknown(self, resource_ids: Iterable[str]) -> list[str]:
        return [r for r in resource_ids if r not in self.nodes]

    def walk(self) -> Iterable[tuple[int, Node]]:
        """Depth-first (depth, node) pairs, roots first, for listings."""
        roots = [n for n in self.nodes.values() if n.parent is None]
        stack = [(0, n) for n in reversed(roots)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, self.nodes[c]) for c in reversed(node.children))
