"""Ingest with progress, text / keyword / hybrid / image / audio search with the real
encoders, filters and explain."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import agentdb
from conftest import PHOTOS

BREAD = "# Baking bread\n\nMix flour, water, yeast and salt. Knead the dough and bake it in a hot oven."
CARS = "The red sports car raced down the motorway at high speed past the harbour."


def _folder(root: Path) -> Path:
    d = root / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "bread.md").write_text(BREAD)
    (d / "sub" / "cars.txt").write_text(CARS)
    (d / ".hidden.txt").write_text("never ingested")
    for p in ("chelsea.png", "coffee.png"):
        shutil.copy(PHOTOS / p, d / p)
    return d


def test_ingest_with_progress_then_search(client, unique, tmp_path):
    if not (PHOTOS / "chelsea.png").exists():
        pytest.skip(f"no test photos under {PHOTOS}")
    name = unique("mm")
    info = client.create_collection(name, multimodal=True)
    assert [s.name for s in info.spaces] == ["text"] and info.spaces[0].encoder.startswith("all-minilm")
    folder = _folder(tmp_path)
    seen = []
    report = client.ingest(name, [folder, tmp_path / "nope.txt"], on_progress=seen.append)
    assert isinstance(report, agentdb.IngestReport)
    assert [p.done for p in seen] == [1, 2, 3, 4, 5] and {p.total for p in seen} == {5}
    by_name = {Path(r.source).name: r for r in report.results}
    assert set(by_name) == {"bread.md", "cars.txt", "chelsea.png", "coffee.png", "nope.txt"}
    assert report.ingested == 4 and report.skipped == 0 and report.items == 4
    assert [Path(f.source).name for f in report.failed] == ["nope.txt"]
    assert by_name["chelsea.png"].media_type == "image/png" and len(by_name["chelsea.png"].content_sha256) == 64
    # Again: everything is skipped (the server knows the content); bytes work too.
    again = client.ingest(name, [folder, ("inline/note.txt", b"Tomatoes grow best in full sun.")])
    assert (again.ingested, again.skipped) == (1, 4)

    # Text query through the real MiniLM encoder; hybrid with explain.
    hits = client.search(name, text="how do I bake bread", top_k=3, explain=True)
    assert Path(hits[0].source).name == "bread.md" and hits[0].modality == "text"
    lists = {e.list for e in hits[0].explain}
    assert {"keyword", "text/text"} <= lists
    kw = next(e for e in hits[0].explain if e.list == "keyword")
    assert kw.rank == 1 and "**" in kw.snippet and kw.matched
    dense = client.search(name, text="a fast automobile", top_k=1, mode="dense", fusion="rrf")
    assert Path(dense[0].source).name == "cars.txt"
    keyword = client.search(name, keyword='"harbour"', top_k=5)
    assert [Path(h.source).name for h in keyword] == ["cars.txt"]
    cats = client.search(name, text="a cat", filter='modality = "image"', top_k=5)
    assert Path(cats[0].source).name == "chelsea.png" and all(h.modality == "image" for h in cats)
    assert "cat" in " ".join(cats[0].payload["labels"])

    # Query by example image: a path, then bytes.
    by_path = client.search(name, image=PHOTOS / "coffee.png", top_k=2)
    assert Path(by_path[0].source).name == "coffee.png"
    by_bytes = client.search(name, image=(PHOTOS / "chelsea.png").read_bytes(), top_k=2, explain=True)
    assert Path(by_bytes[0].source).name == "chelsea.png"
    assert by_bytes[0].explain and by_bytes[0].explain[0].list == "text/image"
    with pytest.raises(ValueError):
        client.search(name)


@pytest.fixture(scope="module")
def speech(server, tmp_root):
    """Two recordings spoken by espeak-ng, ingested once (the sync client)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is needed to synthesise speech")
    d = tmp_root / "speech"
    (d / "media").mkdir(parents=True)

    def say(text: str, voice: str, out: Path) -> None:
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(out), text], check=True)

    say("The train to the airport leaves from platform four every twenty minutes.", "en-us", d / "media" / "a.wav")
    say("Preheat the oven and roast the chicken for one hour.", "en-us", d / "media" / "b.wav")
    say("How long should I roast a chicken?", "en-gb", d / "q.wav")
    with agentdb.Client(server.url, api_key=server.admin_key) as c:
        c.create_collection("speech", multimodal=True)
        report = c.ingest("speech", d / "media")
    assert report.ingested == 2, report.results
    return d


def test_audio_search(client, speech):
    by_path = client.search("speech", audio=speech / "q.wav", top_k=2)
    assert Path(by_path[0].source).name == "b.wav" and by_path[0].modality == "speech"
    assert "chicken" in by_path[0].payload["text"].lower()
    by_text = client.search("speech", text="when does the airport train go", top_k=1)
    assert Path(by_text[0].source).name == "a.wav" and by_text[0].part.startswith("speech ")
