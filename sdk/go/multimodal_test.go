package agentdb_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	agentdb "github.com/agentdb/agentdb/sdk/go"
)

func TestTextSearchWithTheRealEncoder(t *testing.T) {
	ctx := ctxT(t, 120*time.Second)
	c := admin(t)
	info, err := c.CreateCollection(ctx, "go_notes", agentdb.CollectionConfig{Multimodal: true})
	must(t, err)
	if len(info.Spaces) == 0 || info.Spaces[0].Encoder == "" || info.KeywordLanguage == "" {
		t.Fatalf("multimodal collection: %+v", info)
	}
	docs := map[string]string{
		"bread.txt":   "Knead the dough for ten minutes, let it rise for an hour, then bake the loaf at 220 degrees.",
		"bikes.txt":   "Check the tyre pressure and oil the chain of your bicycle before a long ride.",
		"tax.md":      "# Taxes\n\nFile your income tax return before the deadline and keep the receipts.",
		"harbour.txt": "The ferry leaves the harbour at dawn and crosses the bay to the island.",
	}
	for src, text := range docs {
		r, err := c.IngestBytes(ctx, "go_notes", src, []byte(text))
		must(t, err)
		if r.Status != "ingested" || r.Items < 1 || r.Source != src || !strings.HasPrefix(r.MediaType, "text/") || len(r.ContentSHA256) != 64 {
			t.Fatalf("ingest %s: %+v", src, r)
		}
	}
	r, err := c.IngestBytes(ctx, "go_notes", "bread-again.txt", []byte(docs["bread.txt"]))
	must(t, err)
	if r.Status != "skipped" {
		t.Fatalf("the same content again: %+v", r)
	}
	cases := map[string]string{
		"how do I bake bread":           "bread.txt",
		"maintaining a bike":            "bikes.txt",
		"boat trip across the sea":      "harbour.txt",
		"paying taxes to the authority": "tax.md",
	}
	for q, want := range cases {
		hits, err := c.Search(ctx, "go_notes", agentdb.Query{Text: q, TopK: 3, Mode: agentdb.ModeDense})
		must(t, err)
		if len(hits) == 0 || hits[0].Source != want || hits[0].Modality != "text" {
			t.Fatalf("%q: want %s first, got %+v", q, want, hits)
		}
	}
	// Hybrid with explain: the keyword list says what matched.
	hits, err := c.Search(ctx, "go_notes", agentdb.Query{Text: "ferry harbour", TopK: 2, Explain: true, Mode: agentdb.ModeHybrid})
	must(t, err)
	if len(hits) == 0 || hits[0].Source != "harbour.txt" || len(hits[0].Explain) < 2 {
		t.Fatalf("hybrid explain: %+v", hits)
	}
	var kw *agentdb.ListScore
	for i, e := range hits[0].Explain {
		if e.List == "keyword" {
			kw = &hits[0].Explain[i]
		}
		if e.Rank < 1 {
			t.Fatalf("explain rank: %+v", e)
		}
	}
	if kw == nil || len(kw.Matched) == 0 || !strings.Contains(kw.Snippet, "**") || kw.Coverage <= 0 {
		t.Fatalf("keyword explain: %+v", hits[0].Explain)
	}
	// Keyword-only, and a filter on the payload the server records.
	hits, err = c.Search(ctx, "go_notes", agentdb.Query{Keyword: "receipts", TopK: 5})
	must(t, err)
	if len(hits) != 1 || hits[0].Source != "tax.md" {
		t.Fatalf("keyword search: %+v", hits)
	}
	hits, err = c.Search(ctx, "go_notes", agentdb.Query{Text: "bread", TopK: 5, Filter: `modality = "image"`})
	must(t, err)
	if len(hits) != 0 {
		t.Fatalf("no images yet, got %+v", hits)
	}
}

// photos copies some test photos into a folder (with a hidden file to skip).
func photos(t *testing.T, names ...string) string {
	src := filepath.Join(testdataDir(), "photos")
	dir := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatalf("test photo: %v (AGENTDB_TESTDATA; make test fetches them)", err)
		}
		must(t, os.WriteFile(filepath.Join(dir, n), b, 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, ".hidden.txt"), []byte("skipped"), 0o644))
	return dir
}

// sineWav is a 1 s, 16 kHz mono tone: a recording without speech.
func sineWav() []byte {
	const rate, n = 16000, 16000
	var b bytes.Buffer
	w := func(v interface{}) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	w(uint32(36 + n*2))
	b.WriteString("WAVEfmt ")
	w(uint32(16))
	w(uint16(1))
	w(uint16(1))
	w(uint32(rate))
	w(uint32(rate * 2))
	w(uint16(2))
	w(uint16(16))
	b.WriteString("data")
	w(uint32(n * 2))
	for i := 0; i < n; i++ {
		w(int16(8000 * math.Sin(2*math.Pi*440*float64(i)/rate)))
	}
	return b.Bytes()
}

func TestFolderIngestWithProgressAndImageSearch(t *testing.T) {
	ctx := ctxT(t, 300*time.Second)
	c := admin(t)
	_, err := c.CreateCollection(ctx, "go_media", agentdb.CollectionConfig{Multimodal: true})
	must(t, err)
	names := []string{"chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "horse.png"}
	dir := photos(t, names...)
	must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "sub", "tone.wav"), sineWav(), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "sub", "note.txt"), []byte("A tabby cat sleeps on the windowsill in the sun."), 0o644))

	var progress []agentdb.IngestProgress
	sum, err := c.Ingest(ctx, "go_media", []string{dir}, &agentdb.IngestOptions{
		Concurrency: 2,
		Progress:    func(p agentdb.IngestProgress) { progress = append(progress, p) },
	})
	must(t, err)
	if sum.Files != 7 || sum.Ingested != 7 || len(sum.Failed) != 0 || sum.Skipped != 0 || sum.Items < 7 {
		t.Fatalf("summary: %+v", sum)
	}
	if len(progress) != 7 || progress[6].Done != 7 || progress[0].Done != 1 || progress[0].Total != 7 {
		t.Fatalf("progress: %+v", progress)
	}
	types := map[string]string{}
	for _, r := range sum.Results {
		types[filepath.Base(r.Source)] = r.MediaType
	}
	if types["chelsea.png"] != "image/png" || types["rocket.jpg"] != "image/jpeg" || !strings.HasPrefix(types["tone.wav"], "audio/") || types[".hidden.txt"] != "" {
		t.Fatalf("media types: %v", types)
	}

	// Query by example: the same photo comes first.
	for _, n := range []string{"chelsea.png", "rocket.jpg"} {
		img, err := os.ReadFile(filepath.Join(dir, n))
		must(t, err)
		hits, err := c.Search(ctx, "go_media", agentdb.Query{Image: img, TopK: 3, Explain: true})
		must(t, err)
		if len(hits) == 0 || filepath.Base(hits[0].Source) != n || hits[0].Modality != "image" || len(hits[0].Explain) == 0 {
			t.Fatalf("query by %s: %+v", n, hits)
		}
	}
	// Text to image through the image labels, restricted to images.
	hits, err := c.Search(ctx, "go_media", agentdb.Query{Text: "a cup of coffee", TopK: 2, Filter: `modality = "image"`})
	must(t, err)
	if len(hits) == 0 || filepath.Base(hits[0].Source) != "coffee.png" {
		t.Fatalf("text to image: %+v", hits)
	}
	for _, h := range hits {
		if h.Modality != "image" {
			t.Fatalf("filter modality = image returned %+v", h)
		}
	}

	// Again: everything is skipped; a missing path and a too large file fail locally.
	big := filepath.Join(t.TempDir(), "big.bin")
	must(t, os.WriteFile(big, make([]byte, 1<<20+1), 0o644))
	sum, err = c.Ingest(ctx, "go_media", []string{dir, filepath.Join(dir, "missing.png"), big}, &agentdb.IngestOptions{MaxFileBytes: 1 << 20})
	must(t, err)
	if sum.Skipped != 7 || sum.Ingested != 0 || len(sum.Failed) != 2 || sum.Files != 9 {
		t.Fatalf("second run: %+v", sum)
	}
	// An unknown collection: the server fails each file (the stream itself succeeds).
	sum, err = c.Ingest(ctx, "go_missing", []string{filepath.Join(dir, "sub", "note.txt")}, nil)
	must(t, err)
	if len(sum.Failed) != 1 || !strings.Contains(sum.Failed[0].Error, "not found") {
		t.Fatalf("ingest into a missing collection: %+v", sum)
	}
}
