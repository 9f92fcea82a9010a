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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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


def plain_document(node: Node, scalar: ScalarConstructor) -> Any:
    """The value of the document rooted at `node`; `scalar` builds an int, float, bool or null scalar
    as the loader does. Raises NotPlain (see the module docstring) or RecursionError (too deep)."""
    built: dict[int, Any] = {}  # by node identity: an alias is the object already built
    building: set[int] = set()

    def value(n: Node) -> Any:
        key = id(n)
        if key in built:
            return built[key]
        if key in building:  # an alias to an enclosing node: a recursive structure
            raise NotPlain
        tag = n.tag
        if isinstance(n, ScalarNode):
            if tag == STR:
                out: Any = n.value
            elif tag in SCALAR_TAGS:
                out = scalar(n)
            else:
                raise NotPlain
        elif isinstance(n, MappingNode) and tag == MAP:
            building.add(key)
            out = {}
            for k, v in n.value:
                if not isinstance(k, ScalarNode) or k.tag not in KEY_TAGS:
                    raise NotPlain
                out[value(k)] = value(v)
            building.discard(key)
        elif isinstance(n, SequenceNode) and tag == SEQ:
            building.add(key)
            out = [value(item) for item in n.value]
            building.discard(key)
        else:
            raise NotPlain
        built[key] = out
        return out

    return value(node)
