"""A YAML document's Python value built straight from its node graph, for the plain documents that job
specs are: mappings, sequences and the core scalars (str, int, float, bool, null).

Why: with libyaml doing the parsing, most of the time to read a spec went to PyYAML's generic
constructor (generators, state per node), not to libyaml itself; a batch reads 10,000 specs. The
value built here is the one PyYAML's constructor builds: the scalars go through the loader's own
constructors (so its int reading, with `HugeNumber`, applies), a node met twice (a YAML alias) is the
same object both times, and the loader's implicit resolvers have already chosen each tag. Anything
else (an explicit or unknown tag, a merge key `<<`, a `=` key, a key that is not a scalar, an alias
to a node still being built) raises `NotPlain`, and the caller builds the document the usual way, so
its value, or its error, is PyYAML's.

While building, the walk also measures what the document check (config/document.py) looks for, so
a document that plainly has none of it need not be walked a second time: see `Walk.clean`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from carbonshift.config.document import MAX_DEPTH, MAX_NODES, HugeNumber

MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"
STR = "tag:yaml.org,2002:str"
SCALAR_TAGS = frozenset(
    {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"}
)
KEY_TAGS = SCALAR_TAGS | {STR}  # not merge (<<) or value (=): PyYAML's constructor treats those apart

ScalarConstructor = Callable[[ScalarNode], Any]


class NotPlain(Exception):
    """The document needs PyYAML's own constructor."""


class Walk:
    """What building a document met, counted as `document_problem` counts: values (not mapping keys),
    each at its depth (the document's own value at 0)."""

    def __init__(self) -> None:
        self.values = 0
        self.deepest = 0
        self.shared = False  # a node met twice (an alias): the check counts it each time it is seen
        self.huge = False  # a HugeNumber was built

    def clean(self) -> bool:
        """Whether `document_problem` is sure to find nothing, given text from libyaml (which refuses
        a lone surrogate, so every string is valid Unicode): no alias, no HugeNumber, no more values
        or depth than it allows. When unsure, the caller runs the check itself."""
        return not (self.shared or self.huge) and self.values <= MAX_NODES and self.deepest <= MAX_DEPTH


def plain_document(
    node: Node, scalar: ScalarConstructor, walk: Walk | None = None, *, shared: bool = True
) -> Any:
    """The value of the document rooted at `node`; `scalar` builds an int, float, bool or null scalar
    as the loader does. Raises NotPlain (see the module docstring) or RecursionError (too deep).

    `shared=False` says no node can be met twice (the text has no anchor `&`, so no alias can name
    one): the nodes are then built as a tree, without keeping track of which were built."""
    seen = walk if walk is not None else Walk()
    if not shared:
        return _tree(node, scalar, seen)
    built: dict[int, Any] = {}  # by node identity: an alias is the object already built
    building: set[int] = set()

    def value(n: Node, depth: int) -> Any:
        key = id(n)
        if key in built:
            seen.shared = True
            return built[key]
        if key in building:  # an alias to an enclosing node: a recursive structure
            raise NotPlain
        if depth >= 0:
            seen.values += 1
            seen.deepest = max(seen.deepest, depth)
        tag = n.tag
        if isinstance(n, ScalarNode):
            out = _scalar(n, scalar, seen)
        elif isinstance(n, MappingNode) and tag == MAP:
            building.add(key)
            out = {}
            for k, v in n.value:
                if not isinstance(k, ScalarNode) or k.tag not in KEY_TAGS:
                    raise NotPlain
                out[value(k, -1)] = value(v, depth + 1)
            building.discard(key)
        elif isinstance(n, SequenceNode) and tag == SEQ:
            building.add(key)
            out = [value(item, depth + 1) for item in n.value]
            building.discard(key)
        else:
            raise NotPlain
        built[key] = out
        return out

    try:
        return value(node, 0)
    finally:
        value = _unbound  # see _tree


def _tree(node: Node, scalar: ScalarConstructor, seen: Walk) -> Any:
    """`plain_document` for a document whose nodes are all distinct; values are counted by container."""
    seen.values += 1

    def value(n: Node, depth: int) -> Any:
        tag = n.tag
        if isinstance(n, ScalarNode):
            return n.value if tag == STR else _scalar(n, scalar, seen)
        items = n.value
        if items:
            seen.values += len(items)
            seen.deepest = max(seen.deepest, depth + 1)
        if isinstance(n, MappingNode) and tag == MAP:
            out = {}
            for k, v in items:
                if not isinstance(k, ScalarNode) or k.tag not in KEY_TAGS:
                    raise NotPlain
                out[k.value if k.tag == STR else _scalar(k, scalar, seen)] = value(v, depth + 1)
            return out
        if isinstance(n, SequenceNode) and tag == SEQ:
            return [value(item, depth + 1) for item in items]
        raise NotPlain

    try:
        return value(node, 0)
    finally:
        # the closure refers to itself through its cell, and to the loader through `scalar`: left as
        # is, every document read leaves a cycle (with libyaml's parser and its buffers) that only the
        # collector frees, and `plan DIR` pauses it (10,000 specs: 0.3-0.7 s collecting at the end)
        value = _unbound


def _unbound(n: Node, depth: int) -> Any:
    """What a document's builder is left pointing at once done (to break its cycle): never called."""
    raise AssertionError("a finished document's builder was called")


def _scalar(n: ScalarNode, scalar: ScalarConstructor, seen: Walk) -> Any:
    tag = n.tag
    if tag == STR:
        return n.value
    if tag not in SCALAR_TAGS:
        raise NotPlain
    out = scalar(n)
    if isinstance(out, HugeNumber):
        seen.huge = True
    return out
