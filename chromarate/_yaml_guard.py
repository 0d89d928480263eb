"""Bounds on the YAML chromarate reads from files: its size, and the size of the tree its
aliases stand for.

A YAML file of a few hundred bytes can describe a tree of billions of nodes (anchors and
aliases nested nine deep: "billion laughs"). PyYAML builds such a tree quickly, as shared
references, but everything that walks it afterwards (a config's checks, ``str`` of a value,
a schema) expands it and never finishes. :func:`check_yaml_tree` counts the nodes the tree
stands for on the composed node graph, where each shared node is counted once per use
without being walked again, and refuses a tree of more than :data:`MAX_NODES` nodes, a
recursive alias or a nesting too deep for the parser. :func:`read_yaml_text` reads a YAML
file only if it is a regular file within a size cap.

Both raise :class:`YamlLimitError`; callers turn it into their own error type, naming the
file.
"""

from __future__ import annotations

import os
from typing import Any

from ._readfile import NotReadableError, read_regular

__all__ = ["MAX_NODES", "MAX_YAML_BYTES", "YamlLimitError", "check_yaml_tree", "expanded_size",
           "read_yaml_bytes", "read_yaml_text"]

#: Largest YAML file read (configs and sidecar files are a few kB). Composing YAML costs
#: memory and time per node: 4 MiB of one-item lines took 21 s and 750 MB, so 1 MiB bounds
#: it at a quarter of that.
MAX_YAML_BYTES = 1 << 20
#: Largest number of nodes a YAML tree may stand for once its aliases are expanded.
MAX_NODES = 1_000_000


class YamlLimitError(ValueError):
    """A YAML text or file beyond the bounds of this module (the message says which)."""


def read_yaml_text(path: str | os.PathLike, *, max_bytes: int = MAX_YAML_BYTES,
                   encoding: str = "utf-8") -> str:
    """The text of a YAML file that is a regular file of at most ``max_bytes`` bytes.

    Raises
    ------
    YamlLimitError
        As :func:`read_yaml_bytes`.
    OSError, UnicodeDecodeError
        It cannot be read or decoded.
    """
    return read_yaml_bytes(path, max_bytes=max_bytes).decode(encoding)


def read_yaml_bytes(path: str | os.PathLike, *, max_bytes: int = MAX_YAML_BYTES) -> bytes:
    """The bytes of a YAML file that is a regular file of at most ``max_bytes`` bytes
    (:func:`chromarate._readfile.read_regular`).

    Raises
    ------
    YamlLimitError
        Not a regular file (a folder, device, pipe or socket: reading a pipe would wait for
        a writer) or larger than ``max_bytes``.
    OSError
        It cannot be read.
    """
    try:
        return read_regular(path, max_bytes, expected="a YAML text file")
    except NotReadableError as exc:
        raise YamlLimitError(str(exc)) from None


def _children(node: Any) -> list[Any]:
    import yaml  # noqa: PLC0415 - imported where YAML is read

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def expanded_size(root: Any, cap: int = MAX_NODES) -> int:
    """The number of nodes a composed YAML node graph stands for, counting each shared
    (aliased) node once per use; at most ``cap + 1``.

    Raises
    ------
    YamlLimitError
        A node contains itself (a recursive alias).
    """
    return _sizes(root, cap)[0]


def _sizes(root: Any, cap: int) -> tuple[int, int]:
    """(expanded size at most ``cap + 1``, distinct nodes) of a composed node graph."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = min(cap + 1, 1 + sum(sizes[id(c)] for c in _children(node)))
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise YamlLimitError("a recursive alias (a node that contains itself)")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)], len(sizes)


def distinct_cap(text: str) -> int:
    """An upper bound on the nodes a YAML text writes out (one per character at most)."""
    return len(text) + 1


def check_yaml_tree(text: str, *, loader: Any = None, max_nodes: int = MAX_NODES) -> None:
    """Refuse YAML whose aliases add more than ``max_nodes`` nodes in all to the nodes it
    writes out (a large tree written out in full is only as large as its text).

    Parameters
    ----------
    text : str
        One or more YAML documents.
    loader : yaml Loader class, optional
        The loader that will read it (its composer is used; default ``yaml.SafeLoader``).
    max_nodes : int

    Raises
    ------
    YamlLimitError
        Too many nodes once aliases are expanded, a recursive alias, or nesting deeper than
        the parser can follow.
    yaml.YAMLError
        Not valid YAML (left to the caller to report, as when it loads the text).
    """
    import yaml  # noqa: PLC0415

    added = 0  # nodes the aliases add: the expanded tree less the nodes written out
    try:
        # the pure-Python composer: libyaml's (CSafeLoader) is faster but recurses in C,
        # and crashes the process on nesting the Python one refuses with RecursionError
        for document in yaml.compose_all(text, Loader=loader or yaml.SafeLoader):
            if document is not None:
                expanded, distinct = _sizes(document, max_nodes + distinct_cap(text))
                added += max(0, expanded - distinct)
            if added > max_nodes:
                raise YamlLimitError(
                    f"its aliases expand it by more than {max_nodes:,} nodes (anchors and "
                    "aliases nested to describe a huge tree); expected plain YAML")
    except RecursionError:
        raise YamlLimitError("nested too deeply for the YAML parser") from None
