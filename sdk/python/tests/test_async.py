"""The asyncio client's streaming APIs, natively (subscribe, ingest with async progress),
and concurrent calls on one channel."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import agentdb


def test_async_streams_and_concurrency(server, unique):
    async def main() -> None:
        async with agentdb.AsyncClient(server.url, api_key=server.admin_key) as db:
            coll = unique("aio")
            await db.create_collection(coll, multimodal=True)
            seen = []

            async def progress(p: agentdb.IngestProgress) -> None:
                await asyncio.sleep(0)
                seen.append((p.done, p.total, p.result.status))

            sub = db.subscribe("ingestion", from_offset=(await db.topics()).next_offset)
            next_event = asyncio.ensure_future(sub.__anext__())
            report = await db.ingest(
                coll,
                [("a.txt", b"Whales sing long songs in the deep ocean."), ("b.txt", b"Cacti store water.")],
                on_progress=progress,
            )
            assert report.ingested == 2 and sorted(seen) == [(1, 2, "ingested"), (2, 2, "ingested")]
            ev = await asyncio.wait_for(next_event, 10)
            assert isinstance(ev, agentdb.Event) and ev.topic == "ingestion"
            sub.close()
            with pytest.raises(StopAsyncIteration):
                await sub.__anext__()

            hits = await db.search(coll, text="singing whales", top_k=1)
            assert hits[0].source == "a.txt"

            # Replay the topic from an offset with `async for`.
            async with db.subscribe(["ingestion"], from_offset=ev.offset) as replay:
                async for got in replay:
                    assert got.offset == ev.offset
                    break

            vcoll = unique("aiov")
            await db.create_collection(vcoll, 3, index="Flat")
            vecs = np.eye(3, dtype=np.float32)
            await asyncio.gather(*(db.upsert(vcoll, ids=[f"i{k}"], vectors=vecs[k]) for k in range(3)))
            results = await asyncio.gather(*(db.search(vcoll, vecs[k], top_k=1) for k in range(3)))
            assert [r[0].id for r in results] == ["i0", "i1", "i2"]
            assert [it.id async for it in db.iter_items(vcoll, page_size=2)] == ["i0", "i1", "i2"]
            with pytest.raises(agentdb.NotFound):
                await db.count(unique("missing"))

    asyncio.run(main())
