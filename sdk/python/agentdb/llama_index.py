"""LlamaIndex vector store over an AgentDB collection (``pip install "agentdb[llamaindex]"``).

``AgentDBVectorStore(collection, client)`` stores each node as one item: id = the node
id, payload ``{"text": ..., "metadata": {...node.metadata}, "ref_doc_id": ...,
"_node_content": ..., "_node_type": ...}`` (the node is rebuilt from it on query), so
``stores_text`` is True and no docstore is needed.

Two modes:

* ``server_encoder=True``: AgentDB's own text encoder (all-MiniLM-L6-v2 on a default
  server) embeds nodes and queries on the server; the application needs no embedding
  model. Queries go to the server as text (``is_embedding_query`` is False, so
  LlamaIndex passes ``query_str`` and computes no query embedding). LlamaIndex still
  embeds nodes with the index's ``embed_model`` when it builds an index: give it
  :class:`AgentDBEmbedding` (the same server encoder), e.g.
  ``VectorStoreIndex.from_documents(docs, storage_context=..., embed_model=store.embed_model)``.
  Nodes added without an embedding are embedded by the server (one
  :meth:`agentdb.Client.embed` call per batch; the vectors are upserted tagged with the
  encoder's id). The encoder reads at most its window of a text (256 word pieces for
  all-MiniLM-L6-v2): split long documents first (LlamaIndex's node parser does).
* ``server_encoder=False`` (default): the nodes' embeddings (from any ``embed_model``) go
  into a collection with one explicit space of their dimension.

``MetadataFilters`` become AgentDB filter expressions over ``metadata.KEY``: EQ, NE, GT,
GTE, LT, LTE (numbers), IN, NIN, ANY, ALL, CONTAINS, IS_EMPTY, nested filters with AND /
OR / NOT. ``query.doc_ids`` filters on ``ref_doc_id``. Similarities are the server's
scores: cosine similarity for a cosine collection (higher is closer).
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.schema import BaseNode, MetadataMode, TextNode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError('agentdb.llama_index needs llama-index-core: pip install "agentdb[llamaindex]"') from e

from ._aio import AsyncClient
from ._client import Client
from ._errors import AlreadyExists, NotFound
from ._integrations import aembed_texts, condition, embed_texts, field_path, literal
from ._types import Embeddings, Hit, Item

__all__ = ["AgentDBVectorStore", "AgentDBEmbedding", "metadata_filters_expression"]

_NODE_KEYS = ("_node_content", "_node_type", "ref_doc_id", "doc_id", "document_id")


# ------------------------------------------------------------------ filters


def _one(f: MetadataFilter, prefix: Optional[str]) -> str:
    path = field_path(f.key, prefix)
    op, v = f.operator, f.value
    simple = {
        FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt", FilterOperator.GTE: "$gte",
        FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte", FilterOperator.IN: "$in", FilterOperator.NIN: "$nin",
        # An array field matches `in` when any element is in the list.
        FilterOperator.ANY: "$in",
    }
    if op in simple:
        return condition(path, simple[op], v)
    if op == FilterOperator.CONTAINS:  # array field holds the value
        return condition(path, "$eq", v)
    if op == FilterOperator.ALL:
        vals = list(v) if isinstance(v, (list, tuple)) else [v]
        if not vals:
            raise ValueError("ALL takes a non-empty list")
        return "(" + " and ".join(f"{path} = {literal(x)}" for x in vals) + ")"
    if op == FilterOperator.IS_EMPTY:
        return f"not exists({path})"  # absent or null
    raise ValueError(f"AgentDB filters cannot express {op.value!r} (no substring match in payload filters)")


def metadata_filters_expression(filters: Optional[MetadataFilters], prefix: Optional[str] = "metadata") -> str:
    """The AgentDB filter expression of LlamaIndex ``filters`` (keys under ``prefix``)."""
    if filters is None or not filters.filters:
        return ""
    parts = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            inner = metadata_filters_expression(f, prefix)
            if inner:
                parts.append(f"({inner})")
        else:
            parts.append(_one(f, prefix))
    if not parts:
        return ""
    cond = filters.condition or FilterCondition.AND
    if cond == FilterCondition.NOT:
        return "not (" + " and ".join(parts) + ")"
    if len(parts) == 1:
        return parts[0]
    joiner = " or " if cond == FilterCondition.OR else " and "
    return joiner.join(f"({p})" for p in parts)


# ------------------------------------------------------------------ the server encoder as an embed model


class AgentDBEmbedding(BaseEmbedding):
    """LlamaIndex embed model backed by AgentDB's own text encoder, on the server: the
    encoder bound to ``collection``'s ``space`` ("" = its text space), through
    :meth:`agentdb.Client.embed`. ``create_collection``: create ``collection``
    (multimodal, so its spaces are bound to the server's encoders) when it is missing.
    ``encoder`` is the id of the model, once a text was embedded."""

    model_name: str = Field(default="agentdb-server-text-encoder")
    collection: str
    space: str = Field(default="")
    create_collection: bool = Field(default=True)
    encoder: str = Field(default="")
    _client: Client = PrivateAttr()
    _async_client: Optional[AsyncClient] = PrivateAttr(default=None)

    def __init__(
        self,
        client: Optional[Client] = None,
        *,
        collection: str,
        space: str = "",
        create_collection: bool = True,
        async_client: Optional[AsyncClient] = None,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("embed_batch_size", 64)
        super().__init__(collection=collection, space=space, create_collection=create_collection, **kwargs)
        self._client = client if client is not None else Client(url, api_key=api_key)
        self._async_client = async_client

    @classmethod
    def class_name(cls) -> str:
        return "AgentDBEmbedding"

    def _lists(self, emb: Embeddings) -> List[List[float]]:
        self.encoder = emb.encoder
        return emb.vectors.astype(float).tolist()

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        try:
            return self._lists(embed_texts(self._client, self.collection, texts, self.space))
        except NotFound:
            if not self.create_collection:
                raise
        try:
            self._client.create_collection(self.collection, multimodal=True)
        except AlreadyExists:
            pass
        return self._lists(embed_texts(self._client, self.collection, texts, self.space))

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._get_text_embedding(query)

    async def _aget_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        ac = self._async_client
        if ac is None:
            return await asyncio.get_running_loop().run_in_executor(None, self._get_text_embeddings, texts)
        try:
            return self._lists(await aembed_texts(ac, self.collection, texts, self.space))
        except NotFound:
            if not self.create_collection:
                raise
        try:
            await ac.create_collection(self.collection, multimodal=True)
        except AlreadyExists:
            pass
        return self._lists(await aembed_texts(ac, self.collection, texts, self.space))

    async def _aget_text_embedding(self, text: str) -> List[float]:
        return (await self._aget_text_embeddings([text]))[0]

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return await self._aget_text_embedding(query)


# ------------------------------------------------------------------ the vector store


class AgentDBVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over the AgentDB collection ``collection``.

    ``client``: an :class:`agentdb.Client` (default: one from ``url`` / ``api_key`` or
    ``AGENTDB_URL`` / ``AGENTDB_API_KEY``); ``async_client`` serves the ``a*`` methods
    natively. ``server_encoder``: see the module docstring. ``space``: the space searched
    ("text" with the server encoder, else the collection's only space). ``metric``: of a
    collection created here for client embeddings. ``create_collection``: create the
    collection on the first write when missing."""

    stores_text: bool = True
    flat_metadata: bool = False
    collection: str
    server_encoder: bool = False
    space: str = ""
    text_key: str = "text"
    metadata_key: str = "metadata"
    metric: str = "cosine"
    create_collection: bool = True

    _client: Client = PrivateAttr()
    _async_client: Optional[AsyncClient] = PrivateAttr(default=None)
    _exists: bool = PrivateAttr(default=False)

    def __init__(
        self,
        collection: str,
        client: Optional[Client] = None,
        *,
        server_encoder: bool = False,
        async_client: Optional[AsyncClient] = None,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        space: Optional[str] = None,
        metric: str = "cosine",
        create_collection: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            collection=collection,
            server_encoder=server_encoder,
            space=space if space is not None else ("text" if server_encoder else ""),
            metric=metric,
            create_collection=create_collection,
            is_embedding_query=not server_encoder,
            **kwargs,
        )
        self._client = client if client is not None else Client(url, api_key=api_key)
        self._async_client = async_client

    @classmethod
    def class_name(cls) -> str:
        return "AgentDBVectorStore"

    @property
    def client(self) -> Client:
        return self._client

    @property
    def embed_model(self) -> AgentDBEmbedding:
        """An embed model using the same server encoder, that of this collection's
        space (for ``VectorStoreIndex``; it creates the collection when missing, as
        :meth:`add` does)."""
        return AgentDBEmbedding(self._client, async_client=self._async_client, collection=self.collection,
                                space=self.space, create_collection=self.create_collection)

    # ------------------------------------------------------------ nodes <-> items

    def _payload(self, node: BaseNode) -> Dict[str, Any]:
        d = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
        payload: Dict[str, Any] = {k: d[k] for k in _NODE_KEYS}
        payload["node_id"] = node.node_id
        payload[self.metadata_key] = dict(node.metadata)
        payload[self.text_key] = node.get_content(metadata_mode=MetadataMode.NONE)
        if self.server_encoder:
            payload["modality"] = "text"
        return payload

    def _node(self, id: str, payload: Dict[str, Any]) -> BaseNode:
        text = payload.get(self.text_key)
        text = text if isinstance(text, str) else ""
        if "_node_content" in payload:
            node = metadata_dict_to_node(payload, text=text)
            if isinstance(payload.get(self.metadata_key), dict):
                node.metadata = dict(payload[self.metadata_key])
            return node
        # An item written by something else (an ingested file): its payload as metadata.
        return TextNode(id_=id, text=text, metadata={k: v for k, v in payload.items() if k != self.text_key})

    def _result(self, hits: Sequence[Hit]) -> VectorStoreQueryResult:
        return VectorStoreQueryResult(
            nodes=[self._node(h.id, h.payload) for h in hits],
            similarities=[float(h.score) for h in hits],
            ids=[h.id for h in hits],
        )

    def _vectors_of(self, nodes: Sequence[BaseNode]) -> Optional[List[Dict[str, Any]]]:
        """Client-side vectors, or None when the server must embed (some node has none)."""
        if all(n.embedding is not None for n in nodes):
            return [{self.space: np.asarray(n.embedding, dtype=np.float32)} for n in nodes]
        if not self.server_encoder:
            missing = next(n.node_id for n in nodes if n.embedding is None)
            raise ValueError(f"node {missing} has no embedding (server_encoder=False needs client embeddings)")
        return None

    def _texts(self, nodes: Sequence[BaseNode]) -> List[str]:
        return [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]

    def _items(self, nodes: Sequence[BaseNode], vectors: Optional[List[Dict[str, Any]]],
               emb: Optional[Embeddings]) -> List[Item]:
        if emb is not None:
            # Server vectors carry the encoder's id: the server refuses them for a space
            # bound to another model.
            return [
                Item(id=n.node_id, vectors={self.space: v}, payload=self._payload(n), encoders={self.space: emb.encoder})
                for n, v in zip(nodes, emb.vectors)
            ]
        assert vectors is not None
        return [Item(id=n.node_id, vectors=v, payload=self._payload(n)) for n, v in zip(nodes, vectors)]

    def _create(self, nodes: Sequence[BaseNode], vectors: Optional[List[Dict[str, Any]]]) -> Dict[str, Any]:
        if self.server_encoder:
            return dict(multimodal=True)
        dim = len(next(iter(vectors[0].values()))) if vectors else 0
        return dict(dim=dim, metric=self.metric)

    # ------------------------------------------------------------ writes

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        if not nodes:
            return []
        vectors = self._vectors_of(nodes)
        if not self._exists and self.create_collection:
            try:
                self._client.create_collection(self.collection, **self._create(nodes, vectors))
            except AlreadyExists:
                pass
            self._exists = True
        emb = None if vectors is not None else embed_texts(self._client, self.collection, self._texts(nodes), self.space)
        self._client.upsert(self.collection, self._items(nodes, vectors, emb))
        return [n.node_id for n in nodes]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        ac = self._async_client
        if ac is None:
            return await asyncio.get_running_loop().run_in_executor(None, lambda: self.add(nodes, **kwargs))
        if not nodes:
            return []
        vectors = self._vectors_of(nodes)
        if not self._exists and self.create_collection:
            try:
                await ac.create_collection(self.collection, **self._create(nodes, vectors))
            except AlreadyExists:
                pass
            self._exists = True
        emb = None if vectors is not None else await aembed_texts(ac, self.collection, self._texts(nodes), self.space)
        await ac.upsert(self.collection, self._items(nodes, vectors, emb))
        return [n.node_id for n in nodes]

    def _ref_filter(self, ref_doc_id: str) -> str:
        return f"{field_path('ref_doc_id')} = {literal(ref_doc_id)}"

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete the nodes of the document ``ref_doc_id``."""
        try:
            self._client.delete(self.collection, filter=self._ref_filter(ref_doc_id))
        except NotFound:
            pass

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        if self._async_client is None:
            return self.delete(ref_doc_id)
        try:
            await self._async_client.delete(self.collection, filter=self._ref_filter(ref_doc_id))
        except NotFound:
            pass

    def _node_ids_condition(self, node_ids: Sequence[str]) -> str:
        return condition(field_path("node_id"), "$in", list(node_ids))

    def delete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **delete_kwargs: Any
    ) -> None:
        """Delete by node ids and/or filters."""
        try:
            if node_ids is not None and filters is None:
                if node_ids:
                    self._client.delete(self.collection, list(node_ids))
                return
            parts = []
            if node_ids is not None:
                if not node_ids:
                    return
                parts.append(self._node_ids_condition(node_ids))
            expr = metadata_filters_expression(filters, self.metadata_key)
            if expr:
                parts.append(f"({expr})")
            if parts:
                self._client.delete(self.collection, filter=" and ".join(parts))
        except NotFound:
            pass

    def clear(self) -> None:
        """Drop the collection (it is created again on the next write)."""
        try:
            self._client.drop_collection(self.collection)
        except NotFound:
            pass
        self._exists = False

    # ------------------------------------------------------------ reads

    def get_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None
    ) -> List[BaseNode]:
        """Nodes by id, by ``filters``, or both (the server pages through the matching
        items with ``Items/Scroll``); with neither, every node."""
        parts = []
        if node_ids is not None:
            if not node_ids:
                return []
            parts.append(self._node_ids_condition(node_ids))
        expr = metadata_filters_expression(filters, self.metadata_key)
        if expr:
            parts.append(f"({expr})")
        try:
            items = list(self._client.iter_items(self.collection, " and ".join(parts), page_size=1000))
        except NotFound:
            return []
        if node_ids is not None:
            # In the order asked for.
            by_id = {it.id: it for it in items}
            items = [by_id[i] for i in node_ids if i in by_id]
        return [self._node(it.id, it.payload) for it in items]

    def _search_args(self, query: VectorStoreQuery) -> Dict[str, Any]:
        parts = []
        expr = metadata_filters_expression(query.filters, self.metadata_key)
        if expr:
            parts.append(f"({expr})")
        if query.doc_ids:
            parts.append(condition(field_path("ref_doc_id"), "$in", query.doc_ids))
        k = query.similarity_top_k
        if query.node_ids:
            parts.append(self._node_ids_condition(query.node_ids))
        flt = " and ".join(parts)
        args: Dict[str, Any] = dict(top_k=k, filter=flt)
        mode = query.mode
        if mode == VectorStoreQueryMode.TEXT_SEARCH:
            if not query.query_str:
                raise ValueError("a text search needs query_str")
            args.update(keyword=query.query_str, mode="keyword")
        elif mode == VectorStoreQueryMode.HYBRID and self.server_encoder and query.query_str:
            args.update(text=query.query_str, space=self.space, mode="hybrid")
        elif query.query_embedding is not None:
            args.update(vector=np.asarray(query.query_embedding, dtype=np.float32), space=self.space)
        elif self.server_encoder and query.query_str:
            # One dense list fused by weight 1: the hit's score is its cosine similarity.
            args.update(text=query.query_str, space=self.space, mode="dense", fusion="weighted")
        else:
            raise ValueError("the query has no embedding (and no query_str for the server encoder)")
        return args

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        args = self._search_args(query)
        try:
            hits = self._client.search(self.collection, **args)
        except NotFound:
            hits = []
        return self._result(hits)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if self._async_client is None:
            return await asyncio.get_running_loop().run_in_executor(None, lambda: self.query(query, **kwargs))
        args = self._search_args(query)
        try:
            hits = await self._async_client.search(self.collection, **args)
        except NotFound:
            hits = []
        return self._result(hits)
