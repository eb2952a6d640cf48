"""Shared by the LangChain and LlamaIndex integrations (``agentdb.langchain``,
``agentdb.llama_index``): AgentDB filter expressions built from Python values, and text
embedded by the server's own encoder.

With the server's encoder, documents are embedded by :meth:`agentdb.Client.embed` (the
encoder bound to the collection's text space, the vectors it stores for ingested text
and searches with for ``text=`` queries), then upserted with their ids, payloads and
those vectors, tagged with the encoder's id (the server checks it is the space's).
The encoder reads at most its model's window (256 word pieces for all-MiniLM-L6-v2) of
each text: split long documents before adding them.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from ._convert import MAX_EMBED_TEXTS
from ._types import Embeddings

__all__ = ["field_path", "literal", "condition", "dict_filter", "embed_texts", "aembed_texts"]

# ------------------------------------------------------------------ filter expressions


def field_path(key: str, prefix: Optional[str] = None) -> str:
    """A payload path in the filter language: every segment `backtick-quoted`, so any
    key (spaces, dots, words like ``and``) is taken literally."""
    parts = ([prefix] if prefix else []) + [str(key)]
    for p in parts:
        if "`" in p:
            raise ValueError(f"a filter field name cannot contain a backtick: {p!r}")
    return ".".join(f"`{p}`" for p in parts)


def literal(value: Any) -> str:
    """A value in the filter language: strings JSON-quoted (the server reads JSON
    escapes), numbers, true / false / null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"filter values must be finite numbers, got {v}")
        return repr(v)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"filter values are strings, numbers, booleans or None, got {type(value).__name__}")


def _number(op: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"AgentDB compares numbers only with {op}, got {value!r}")
    return literal(value)


def _values(op: str, values: Any) -> str:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{op} takes a list of values, got {values!r}")
    vals = list(values)
    if not vals:
        raise ValueError(f"{op} takes a non-empty list of values")
    return "[" + ", ".join(literal(v) for v in vals) + "]"


#: Operator names accepted in dict filters (Mongo style, as other LangChain stores).
OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")


def condition(path: str, op: str, value: Any) -> str:
    """One condition on an already-quoted ``path``; ``op`` is one of :data:`OPERATORS`."""
    if op == "$eq":
        return f"{path} = {literal(value)}"
    if op == "$ne":
        return f"{path} != {literal(value)}"
    if op in ("$gt", "$gte", "$lt", "$lte"):
        sym = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
        return f"{path} {sym} {_number(op, value)}"
    if op == "$in":
        return f"{path} in {_values(op, value)}"
    if op == "$nin":
        return f"{path} not in {_values(op, value)}"
    if op == "$exists":
        return f"exists({path})" if value else f"not exists({path})"
    raise ValueError(f"unknown filter operator {op!r}; use one of {', '.join(OPERATORS)}")


def dict_filter(flt: Mapping[str, Any], prefix: Optional[str] = None) -> str:
    """``{"tag": "x", "year": {"$gte": 2020}, "lang": ["en", "fr"]}`` ->
    ``tag = "x" and year >= 2020 and lang in ["en", "fr"]`` (paths under ``prefix``).
    A plain value is an equality, a list is ``in``, a dict maps operators to operands;
    ``$and`` / ``$or`` take lists of such dicts, ``$not`` one."""
    parts: List[str] = []
    for key, value in flt.items():
        if key in ("$and", "$or"):
            if isinstance(value, Mapping) or not isinstance(value, Sequence) or not value:
                raise ValueError(f"{key} takes a non-empty list of filters")
            joined = f" {key[1:]} ".join(f"({dict_filter(v, prefix)})" for v in value)
            parts.append(f"({joined})")
            continue
        if key == "$not":
            parts.append(f"not ({dict_filter(value, prefix)})")
            continue
        path = field_path(key, prefix)
        if isinstance(value, Mapping):
            if not value:
                raise ValueError(f"empty operator dict for {key!r}")
            for op, operand in value.items():
                parts.append(condition(path, op, operand))
        elif isinstance(value, (list, tuple, set)):
            parts.append(condition(path, "$in", value))
        else:
            parts.append(condition(path, "$eq", value))
    if not parts:
        raise ValueError("empty filter")
    return " and ".join(parts)


# ------------------------------------------------------------------ the server's text encoder


def embed_texts(client: Any, collection: str, texts: Sequence[str], space: str = "") -> Embeddings:
    """``texts`` embedded by ``collection``'s encoder with a sync :class:`agentdb.Client`
    (one Embed call per :data:`MAX_EMBED_TEXTS` texts)."""
    texts = list(texts)
    if len(texts) <= MAX_EMBED_TEXTS:
        return client.embed(collection, texts, space=space)
    parts = [client.embed(collection, texts[s:s + MAX_EMBED_TEXTS], space=space)
             for s in range(0, len(texts), MAX_EMBED_TEXTS)]
    return Embeddings(np.concatenate([p.vectors for p in parts]), parts[0].encoder)


async def aembed_texts(client: Any, collection: str, texts: Sequence[str], space: str = "") -> Embeddings:
    """:func:`embed_texts` with an :class:`agentdb.AsyncClient`."""
    texts = list(texts)
    if len(texts) <= MAX_EMBED_TEXTS:
        return await client.embed(collection, texts, space=space)
    parts = [await client.embed(collection, texts[s:s + MAX_EMBED_TEXTS], space=space)
             for s in range(0, len(texts), MAX_EMBED_TEXTS)]
    return Embeddings(np.concatenate([p.vectors for p in parts]), parts[0].encoder)
