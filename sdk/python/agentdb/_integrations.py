"""Shared by the LangChain and LlamaIndex integrations (``agentdb.langchain``,
``agentdb.llama_index``): AgentDB filter expressions built from Python values, and text
embedded by the server's own encoder.

The server has no "embed this text" call and an upsert carries vectors, not text. Text is
therefore embedded through ingest: the texts are ingested into a scratch collection
(multimodal, so the server's text encoder embeds them), their vectors are read back and
the scratch items deleted. Ingest splits a text longer than the server's chunk size
(``ingest.chunk_tokens``, 200 tokens by default) into chunks; such a text gets the
normalised mean of its chunks' vectors (split long documents before adding them).
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._errors import AlreadyExists, NotFound

__all__ = ["field_path", "literal", "condition", "dict_filter", "ServerEncoder"]

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


def _normalised_mean(vs: List[np.ndarray]) -> np.ndarray:
    if len(vs) == 1:
        return np.asarray(vs[0], dtype=np.float32)
    m = np.mean(np.stack(vs).astype(np.float32), axis=0)
    n = float(np.linalg.norm(m))
    return m / n if n > 0 else m


class ServerEncoder:
    """Embeds texts with the encoders of a multimodal collection's spaces, on the server
    (see the module's docstring for how). ``scratch`` names the collection used for it
    (created multimodal when missing); it is left empty after each call.

    The result for each text maps space name -> vector (``{"text": ...}`` on a server
    with the default encoders)."""

    ROUNDS = 4

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        self._created = False

    # The steps, shared by the sync and the asyncio driver.

    def _sources(self, texts: Sequence[str]) -> List[Tuple[str, bytes]]:
        out = []
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"text {i} is empty: AgentDB's text encoder needs some text to embed")
            out.append((f"embed/{uuid.uuid4().hex}.txt", t.encode("utf-8")))
        return out

    @staticmethod
    def _shas(report: Any, sources: List[Tuple[str, bytes]]) -> Dict[str, str]:
        """source -> content sha256 (raises on a text the server refused)."""
        out: Dict[str, str] = {}
        for r in report.results:
            if r.status == "failed":
                raise ValueError(f"the server could not embed a text: {r.error}")
            out[r.source] = r.content_sha256
        missing = [s for s, _ in sources if s not in out]
        if missing:
            raise RuntimeError(f"ingest answered no result for {len(missing)} text(s)")
        return out

    @staticmethod
    def _first_ids(shas: Iterable[str]) -> List[str]:
        return sorted({f"{s[:32]}:0" for s in shas})

    @staticmethod
    def _rest_ids(first: List[Any]) -> List[str]:
        ids = []
        for it in first:
            n = int(it.payload.get("chunks") or 1)
            base = it.id.rsplit(":", 1)[0]
            ids += [f"{base}:{i}" for i in range(1, n)]
        return ids

    @staticmethod
    def _vectors(items: List[Any]) -> Dict[str, Dict[str, np.ndarray]]:
        """sha prefix -> space -> vector (only for files whose chunks are all there)."""
        chunks: Dict[str, Dict[int, Any]] = {}
        want: Dict[str, int] = {}
        for it in items:
            base, i = it.id.rsplit(":", 1)
            chunks.setdefault(base, {})[int(i)] = it
            if int(i) == 0:
                want[base] = int(it.payload.get("chunks") or 1)
        out: Dict[str, Dict[str, np.ndarray]] = {}
        for base, n in want.items():
            got = chunks[base]
            if len(got) < n:
                continue  # deleted meanwhile by a concurrent caller: embed it again
            spaces = got[0].vectors.keys()
            out[base] = {s: _normalised_mean([got[i].vectors[s] for i in range(n)]) for s in spaces}
        return out

    def _finish(
        self,
        texts: Sequence[str],
        todo: List[int],
        sources: List[Tuple[str, bytes]],
        shas: Dict[str, str],
        vecs: Dict[str, Dict[str, np.ndarray]],
        out: List[Optional[Dict[str, np.ndarray]]],
    ) -> List[int]:
        left = []
        for i, (src, _) in zip(todo, sources):
            v = vecs.get(shas[src][:32])
            if v is None:
                left.append(i)
            else:
                out[i] = v
        return left

    # Drivers.

    def _ensure(self, client: Any) -> None:
        if self._created:
            return
        try:
            client.create_collection(self.scratch, multimodal=True, keyword=False)
        except AlreadyExists:
            pass
        self._created = True

    def embed(self, client: Any, texts: Sequence[str]) -> List[Dict[str, np.ndarray]]:
        """Embed ``texts`` with a sync :class:`agentdb.Client`."""
        out: List[Optional[Dict[str, np.ndarray]]] = [None] * len(texts)
        todo = list(range(len(texts)))
        self._sources(texts)  # validate them all first
        for _ in range(self.ROUNDS):
            if not todo:
                break
            self._ensure(client)
            sources = self._sources([texts[i] for i in todo])
            try:
                report = client.ingest(self.scratch, sources)
            except NotFound:
                self._created = False
                continue
            shas = self._shas(report, sources)
            first = client.get(self.scratch, self._first_ids(shas.values()), with_vectors=True)
            rest = self._rest_ids(first)
            items = first + (client.get(self.scratch, rest, with_vectors=True) if rest else [])
            vecs = self._vectors(items)
            if items:
                client.delete(self.scratch, [it.id for it in items])
            todo = self._finish(texts, todo, sources, shas, vecs, out)
        if todo:
            raise RuntimeError(f"could not embed {len(todo)} text(s) through {self.scratch!r}")
        return out  # type: ignore[return-value]

    async def aembed(self, client: Any, texts: Sequence[str]) -> List[Dict[str, np.ndarray]]:
        """Embed ``texts`` with an :class:`agentdb.AsyncClient`."""
        out: List[Optional[Dict[str, np.ndarray]]] = [None] * len(texts)
        todo = list(range(len(texts)))
        self._sources(texts)
        for _ in range(self.ROUNDS):
            if not todo:
                break
            if not self._created:
                try:
                    await client.create_collection(self.scratch, multimodal=True, keyword=False)
                except AlreadyExists:
                    pass
                self._created = True
            sources = self._sources([texts[i] for i in todo])
            try:
                report = await client.ingest(self.scratch, sources)
            except NotFound:
                self._created = False
                continue
            shas = self._shas(report, sources)
            first = await client.get(self.scratch, self._first_ids(shas.values()), with_vectors=True)
            rest = self._rest_ids(first)
            items = first + ((await client.get(self.scratch, rest, with_vectors=True)) if rest else [])
            vecs = self._vectors(items)
            if items:
                await client.delete(self.scratch, [it.id for it in items])
            todo = self._finish(texts, todo, sources, shas, vecs, out)
        if todo:
            raise RuntimeError(f"could not embed {len(todo)} text(s) through {self.scratch!r}")
        return out  # type: ignore[return-value]


def scratch_name(collection: str) -> str:
    """The default scratch collection of ``collection``'s server-side embedding."""
    return f"{collection}__embed"
