"""LangChain vector store over an AgentDB collection (``pip install "agentdb[langchain]"``).

Two modes:

* ``embedding=None`` (default): AgentDB's own text encoder (all-MiniLM-L6-v2 on a default
  server) embeds both the documents and the queries, on the server; no embedding model
  is needed in the application. The collection is created ``multimodal``; documents are
  embedded with one :meth:`agentdb.Client.embed` call per batch and upserted with those
  vectors (tagged with the encoder's id), queries are searched with ``text=``. The
  encoder reads at most its window of a text (256 word pieces for all-MiniLM-L6-v2):
  split long documents first.
* ``embedding=<langchain Embeddings>``: the application's vectors go into a collection with
  one explicit space of the embedding's dimension (``metric``, cosine by default).

Each document is one item: id = ``Document.id`` (a UUID when none), payload
``{"text": page_content, "metadata": {...}}`` (``text_key`` / ``metadata_key``;
``metadata_key=None`` stores the metadata at the top level instead). Filters are a dict
(``{"tag": "x", "year": {"$gte": 2020}, "lang": ["en", "fr"]}``: equality, operators
``$eq $ne $gt $gte $lt $lte $in $nin $exists``, ``$and`` / ``$or`` / ``$not``; keys are
metadata keys) or a raw AgentDB filter expression over the payload
(``'metadata.tag = "x" and metadata.year >= 2020'``).

Scores (``similarity_search_with_score``) are the server's: for a cosine collection
(the default, and the server's text encoder) the cosine **similarity**, higher is
closer (1 = same direction). ``metric="l2"``: the squared Euclidean distance, lower is
closer. ``search_mode="hybrid"`` (server encoder only) fuses BM25 with the dense list and
scores a calibrated probability of relevance in [0, 1].
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

import numpy as np

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError(
        'agentdb.langchain needs langchain-core: pip install "agentdb[langchain]"'
    ) from e

from ._aio import AsyncClient
from ._client import Client
from ._errors import AlreadyExists, NotFound
from ._integrations import aembed_texts, dict_filter, embed_texts
from ._types import Embeddings as ServerEmbeddings
from ._types import Hit, Item

__all__ = ["AgentDBVectorStore"]

Filter = Union[None, str, Mapping[str, Any]]
VST = TypeVar("VST", bound="AgentDBVectorStore")


class AgentDBVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over the AgentDB collection ``collection``.

    ``client``: an :class:`agentdb.Client` (default: one made from ``url`` / ``api_key``,
    else ``AGENTDB_URL`` / ``AGENTDB_API_KEY``). ``async_client``: an
    :class:`agentdb.AsyncClient` for the ``a*`` methods (without one they run the sync
    methods in a thread). ``embedding``: see the module docstring. ``space``: the vector
    space searched and written ("text" with the server encoder, else the collection's
    only space). ``create_collection``: create the collection on the first write when it is missing.
    """

    def __init__(
        self,
        collection: str,
        client: Optional[Client] = None,
        *,
        embedding: Optional[Embeddings] = None,
        async_client: Optional[AsyncClient] = None,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        space: Optional[str] = None,
        text_key: str = "text",
        metadata_key: Optional[str] = "metadata",
        metric: str = "cosine",
        search_mode: str = "dense",
        create_collection: bool = True,
    ) -> None:
        if search_mode not in ("dense", "hybrid", "keyword"):
            raise ValueError("search_mode is dense, hybrid or keyword")
        if search_mode != "dense" and embedding is not None:
            raise ValueError("search_mode hybrid / keyword needs the server encoder (embedding=None)")
        self.collection = collection
        self.client = client if client is not None else Client(url, api_key=api_key)
        self.async_client = async_client
        self.embedding = embedding
        self.space = space if space is not None else ("text" if embedding is None else "")
        self.text_key = text_key
        self.metadata_key = metadata_key or None
        self.metric = metric
        self.search_mode = search_mode
        self.create_collection = create_collection
        self._exists = False

    # ------------------------------------------------------------ LangChain plumbing

    @property
    def embeddings(self) -> Optional[Embeddings]:
        return self.embedding

    @property
    def server_encoder(self) -> bool:
        """True when AgentDB's text encoder embeds documents and queries."""
        return self.embedding is None

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Relevance in [0, 1] from the server's score."""
        if self.search_mode != "dense":
            return lambda s: s  # calibrated probability (hybrid) / BM25-based (keyword)
        if self.metric == "l2":
            # Squared distance between unit vectors lies in [0, 4].
            return lambda d: max(0.0, 1.0 - float(np.sqrt(max(d, 0.0))) / 2.0)
        return lambda s: (1.0 + s) / 2.0  # cosine / inner product of unit vectors: [-1, 1]

    # ------------------------------------------------------------ payloads and filters

    def _payload(self, text: str, metadata: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        meta = dict(metadata or {})
        if self.metadata_key:
            payload: Dict[str, Any] = {self.metadata_key: meta}
        else:
            if self.text_key in meta:
                raise ValueError(f"metadata key {self.text_key!r} is the text field (metadata_key=None)")
            payload = meta
        payload[self.text_key] = text
        if self.server_encoder and self.metadata_key:
            # Ranks the item as a text chunk in the server's fused text search.
            payload.setdefault("modality", "text")
        return payload

    def _document(self, id: str, payload: Mapping[str, Any]) -> Document:
        text = payload.get(self.text_key)
        if self.metadata_key and isinstance(payload.get(self.metadata_key), Mapping):
            meta = dict(payload[self.metadata_key])
        else:
            # An item written by something else (an ingested file): its whole payload.
            meta = {k: v for k, v in payload.items() if k != self.text_key}
        return Document(id=id, page_content=text if isinstance(text, str) else "", metadata=meta)

    def filter_expression(self, filter: Filter) -> str:
        """The AgentDB filter expression for a dict filter (metadata keys) or a string."""
        if filter is None or filter == "" or filter == {}:
            return ""
        if isinstance(filter, str):
            return filter
        if isinstance(filter, Mapping):
            return dict_filter(filter, self.metadata_key)
        raise TypeError(f"filter is a dict or an AgentDB filter expression, got {type(filter).__name__}")

    # ------------------------------------------------------------ writes

    def _ensure_collection(self, dim: int) -> None:
        if self._exists or not self.create_collection:
            return
        try:
            if self.server_encoder:
                self.client.create_collection(self.collection, multimodal=True)
            else:
                self.client.create_collection(self.collection, dim, metric=self.metric)
        except AlreadyExists:
            pass
        self._exists = True

    async def _aensure_collection(self, client: AsyncClient, dim: int) -> None:
        if self._exists or not self.create_collection:
            return
        try:
            if self.server_encoder:
                await client.create_collection(self.collection, multimodal=True)
            else:
                await client.create_collection(self.collection, dim, metric=self.metric)
        except AlreadyExists:
            pass
        self._exists = True

    def _prepare(
        self, texts: Iterable[str], metadatas: Optional[List[dict]], ids: Optional[Sequence[Optional[str]]]
    ) -> Tuple[List[str], List[dict], List[str]]:
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        ids_ = [i or str(uuid.uuid4()) for i in ids] if ids is not None else [str(uuid.uuid4()) for _ in texts]
        metas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        return texts, metas, ids_

    def _items(
        self, texts: List[str], metas: List[dict], ids: List[str], vectors: Sequence[Mapping[str, Any]]
    ) -> List[Item]:
        return [
            Item(id=i, vectors=dict(v), payload=self._payload(t, m)) for t, m, i, v in zip(texts, metas, ids, vectors)
        ]

    def _client_vectors(self, vectors: Sequence[Sequence[float]]) -> List[Dict[str, Any]]:
        return [{self.space: np.asarray(v, dtype=np.float32)} for v in vectors]

    def _server_items(
        self, texts: List[str], metas: List[dict], ids: List[str], emb: ServerEmbeddings
    ) -> List[Item]:
        # The encoder's id goes with each vector: the server refuses it for a space bound
        # to another model.
        return [
            Item(id=i, vectors={self.space: v}, payload=self._payload(t, m), encoders={self.space: emb.encoder})
            for t, m, i, v in zip(texts, metas, ids, emb.vectors)
        ]

    def embed_texts(self, texts: Sequence[str]) -> ServerEmbeddings:
        """``texts`` embedded by the server's encoder of the searched space (server
        encoder mode): the vectors :meth:`add_texts` stores, for
        :meth:`similarity_search_by_vector`."""
        return embed_texts(self.client, self.collection, texts, self.space)

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> List[str]:
        """Embed and upsert ``texts`` (an existing id is replaced); returns the ids."""
        texts, metas, ids_ = self._prepare(texts, metadatas, ids)
        for s in range(0, len(texts), batch_size):
            t, m, i = texts[s:s + batch_size], metas[s:s + batch_size], ids_[s:s + batch_size]
            if self.server_encoder:
                self._ensure_collection(0)
                items = self._server_items(t, m, i, embed_texts(self.client, self.collection, t, self.space))
            else:
                vectors = self._client_vectors(self.embedding.embed_documents(t))  # type: ignore[union-attr]
                self._ensure_collection(len(vectors[0][self.space]))
                items = self._items(t, m, i, vectors)
            self.client.upsert(self.collection, items)
        return ids_

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> List[str]:
        ac = self.async_client
        if ac is None:
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.add_texts(texts, metadatas, ids=ids, batch_size=batch_size)
            )
        texts, metas, ids_ = self._prepare(texts, metadatas, ids)
        for s in range(0, len(texts), batch_size):
            t, m, i = texts[s:s + batch_size], metas[s:s + batch_size], ids_[s:s + batch_size]
            if self.server_encoder:
                await self._aensure_collection(ac, 0)
                items = self._server_items(t, m, i, await aembed_texts(ac, self.collection, t, self.space))
            else:
                vectors = self._client_vectors(await self.embedding.aembed_documents(t))  # type: ignore[union-attr]
                await self._aensure_collection(ac, len(vectors[0][self.space]))
                items = self._items(t, m, i, vectors)
            await ac.upsert(self.collection, items)
        return ids_

    def add_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        if "ids" not in kwargs and any(d.id for d in documents):
            kwargs["ids"] = [d.id for d in documents]
        return self.add_texts([d.page_content for d in documents], [d.metadata for d in documents], **kwargs)

    async def aadd_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        if "ids" not in kwargs and any(d.id for d in documents):
            kwargs["ids"] = [d.id for d in documents]
        return await self.aadd_texts([d.page_content for d in documents], [d.metadata for d in documents], **kwargs)

    def delete(self, ids: Optional[List[str]] = None, *, filter: Filter = None, **kwargs: Any) -> Optional[bool]:
        """Delete by ids, or by a filter (dict or expression); True when something was
        deleted. Deleting everything needs ``filter``: this store never drops the collection."""
        if ids is None and not filter:
            raise ValueError("delete needs ids or a filter")
        try:
            if ids is not None:
                n = self.client.delete(self.collection, list(ids)) if ids else 0
            else:
                n = self.client.delete(self.collection, filter=self.filter_expression(filter))
        except NotFound:
            return False
        return n > 0

    async def adelete(self, ids: Optional[List[str]] = None, *, filter: Filter = None, **kwargs: Any) -> Optional[bool]:
        ac = self.async_client
        if ac is None:
            return await asyncio.get_running_loop().run_in_executor(None, lambda: self.delete(ids, filter=filter))
        if ids is None and not filter:
            raise ValueError("delete needs ids or a filter")
        try:
            if ids is not None:
                n = await ac.delete(self.collection, list(ids)) if ids else 0
            else:
                n = await ac.delete(self.collection, filter=self.filter_expression(filter))
        except NotFound:
            return False
        return n > 0

    # ------------------------------------------------------------ reads

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        if not ids:
            return []
        try:
            items = self.client.get(self.collection, list(ids))
        except NotFound:
            return []
        return [self._document(it.id, it.payload) for it in items]

    async def aget_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        ac = self.async_client
        if ac is None:
            return await asyncio.get_running_loop().run_in_executor(None, self.get_by_ids, ids)
        if not ids:
            return []
        try:
            items = await ac.get(self.collection, list(ids))
        except NotFound:
            return []
        return [self._document(it.id, it.payload) for it in items]

    def _text_search_args(self, query: str, k: int, filter: Filter, **kwargs: Any) -> Dict[str, Any]:
        args: Dict[str, Any] = dict(top_k=k, filter=self.filter_expression(filter))
        if self.search_mode == "keyword":
            args.update(keyword=query, mode="keyword")
        elif self.search_mode == "hybrid":
            args.update(text=query, space=self.space, mode="hybrid")
        else:
            # One dense list fused by weight 1: the hit's score is its cosine similarity.
            args.update(text=query, space=self.space, mode="dense", fusion="weighted")
        args.update(kwargs)
        return args

    def _vector_search_args(self, vector: Sequence[float], k: int, filter: Filter, **kwargs: Any) -> Dict[str, Any]:
        args: Dict[str, Any] = dict(
            vector=np.asarray(vector, dtype=np.float32), top_k=k, filter=self.filter_expression(filter), space=self.space
        )
        args.update(kwargs)
        return args

    def _results(self, hits: Iterable[Hit]) -> List[Tuple[Document, float]]:
        return [(self._document(h.id, h.payload), float(h.score)) for h in hits]

    def _search(self, args: Dict[str, Any]) -> List[Tuple[Document, float]]:
        try:
            return self._results(self.client.search(self.collection, **args))
        except NotFound:
            return []  # nothing written yet

    async def _asearch(self, args: Dict[str, Any]) -> List[Tuple[Document, float]]:
        assert self.async_client is not None
        try:
            return self._results(await self.async_client.search(self.collection, **args))
        except NotFound:
            return []

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        """``(document, score)`` pairs, best first; the score is the server's (cosine
        similarity by default: higher is closer). Extra keyword arguments go to
        :meth:`agentdb.Client.search` (e.g. ``ef``, ``exact``)."""
        if self.server_encoder:
            return self._search(self._text_search_args(query, k, filter, **kwargs))
        return self.similarity_search_with_score_by_vector(
            self.embedding.embed_query(query), k, filter, **kwargs  # type: ignore[union-attr]
        )

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        if self.async_client is None:
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.similarity_search_with_score(query, k, filter, **kwargs)
            )
        if self.server_encoder:
            return await self._asearch(self._text_search_args(query, k, filter, **kwargs))
        vector = await self.embedding.aembed_query(query)  # type: ignore[union-attr]
        return await self._asearch(self._vector_search_args(vector, k, filter, **kwargs))

    def similarity_search(self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any) -> List[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> List[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        return self._search(self._vector_search_args(embedding, k, filter, **kwargs))

    def similarity_search_by_vector(
        self, embedding: List[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> List[Document]:
        """Search by a vector of the searched space (with the server encoder: a vector of
        its text space, e.g. from :meth:`embed_texts`)."""
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)]

    async def asimilarity_search_by_vector(
        self, embedding: List[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> List[Document]:
        if self.async_client is None:
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.similarity_search_by_vector(embedding, k, filter, **kwargs)
            )
        return [d for d, _ in await self._asearch(self._vector_search_args(embedding, k, filter, **kwargs))]

    # ------------------------------------------------------------ maximal marginal relevance

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> List[Document]:
        """MMR over the ``fetch_k`` best hits: the query similarity is the server's
        score, the similarity between documents the cosine of their stored vectors."""
        if self.server_encoder:
            hits = self._search(dict(text=query, space=self.space, mode="dense", fusion="weighted", top_k=fetch_k,
                                     filter=self.filter_expression(filter), **kwargs))
        else:
            hits = self._search(self._vector_search_args(
                self.embedding.embed_query(query), fetch_k, filter, **kwargs  # type: ignore[union-attr]
            ))
        if not hits:
            return []
        items = {it.id: it for it in self.client.get(self.collection, [d.id for d, _ in hits], with_vectors=True)}
        return self._mmr(hits, items, k, lambda_mult)

    def _mmr(self, hits: List[Tuple[Document, float]], items: Mapping[str, Item], k: int, lam: float) -> List[Document]:
        hits = [(d, s) for d, s in hits if d.id in items]
        if not hits:
            return []
        vecs = []
        for d, _ in hits:
            it = items[d.id]
            v = it.vectors.get(self.space) if self.space in it.vectors else it.vector
            vecs.append(np.asarray(v, dtype=np.float32))
        m = np.stack(vecs)
        m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        doc_sim = m @ m.T
        q = np.asarray([s for _, s in hits], dtype=np.float32)
        if self.metric == "l2":
            q = -q
        chosen: List[int] = []
        rest = list(range(len(hits)))
        while rest and len(chosen) < k:
            if chosen:
                red = doc_sim[np.ix_(rest, chosen)].max(axis=1)
            else:
                red = np.zeros(len(rest), dtype=np.float32)
            score = lam * q[rest] - (1 - lam) * red
            best = rest[int(np.argmax(score))]
            chosen.append(best)
            rest.remove(best)
        return [hits[i][0] for i in chosen]

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_texts(
        cls: Type[VST],
        texts: List[str],
        embedding: Optional[Embeddings] = None,
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        collection: str = "langchain",
        client: Optional[Client] = None,
        **kwargs: Any,
    ) -> VST:
        """A store over ``collection`` with ``texts`` added (``embedding=None``: the
        server's encoder). Other keyword arguments go to the constructor."""
        store = cls(collection, client, embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    def from_documents(cls: Type[VST], documents: List[Document], embedding: Optional[Embeddings] = None,
                       **kwargs: Any) -> VST:
        texts = [d.page_content for d in documents]
        metadatas = [d.metadata for d in documents]
        if "ids" not in kwargs and any(d.id for d in documents):
            kwargs["ids"] = [d.id for d in documents]
        return cls.from_texts(texts, embedding, metadatas, **kwargs)
