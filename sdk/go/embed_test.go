package agentdb_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	agentdb "github.com/agentdb/agentdb/sdk/go"
)

func closeTo(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > tol {
			return false
		}
	}
	return true
}

func TestEmbedWithTheServersEncoder(t *testing.T) {
	ctx := ctxT(t, 120*time.Second)
	c := admin(t)
	const coll = "go_embed"
	info, err := c.CreateCollection(ctx, coll, agentdb.CollectionConfig{Multimodal: true})
	must(t, err)
	texts := []string{
		"Knead the dough, let it rise and bake the bread in a hot oven.",
		"The red sports car raced down the motorway at high speed.",
		"Tomatoes grow best in full sun with regular watering.",
	}
	for i, text := range texts {
		_, err := c.IngestBytes(ctx, coll, fmt.Sprintf("doc%d.txt", i), []byte(text))
		must(t, err)
	}

	vecs, encoder, err := c.Embed(ctx, coll, texts)
	must(t, err)
	if len(vecs) != 3 || encoder == "" || encoder != info.Spaces[0].Encoder {
		t.Fatalf("embed: %d vectors, encoder %q (space: %+v)", len(vecs), encoder, info.Spaces)
	}
	for _, v := range vecs {
		var n float64
		for _, x := range v {
			n += float64(x) * float64(x)
		}
		if len(v) != 384 || math.Abs(math.Sqrt(n)-1) > 1e-3 {
			t.Fatalf("want a 384-d unit vector, got %d dims, norm %f", len(v), math.Sqrt(n))
		}
	}
	again, _, err := c.Embed(ctx, coll, texts[1:2], agentdb.EmbedSpace("text"))
	must(t, err)
	if !closeTo(again[0], vecs[1], 1e-5) {
		t.Fatal("the same text, the text space named: another vector")
	}
	for i, text := range texts {
		// The embedding of a document's exact text finds it first, is its stored vector,
		// and is what a dense text search uses (same hits, same scores).
		byVec, err := c.Search(ctx, coll, agentdb.Query{Vector: vecs[i], Space: "text", TopK: 3, WithVectors: true})
		must(t, err)
		if len(byVec) == 0 || byVec[0].Payload["source"] != fmt.Sprintf("doc%d.txt", i) || byVec[0].Score < 0.999 {
			t.Fatalf("vector search for doc%d: %+v", i, byVec)
		}
		if !closeTo(byVec[0].Vector, vecs[i], 1e-4) {
			t.Fatalf("doc%d: the stored vector differs from Embed's", i)
		}
		byText, err := c.Search(ctx, coll, agentdb.Query{Text: text, Space: "text", TopK: 3, Mode: agentdb.ModeDense, Fusion: agentdb.FusionWeighted})
		must(t, err)
		if len(byText) != len(byVec) {
			t.Fatalf("doc%d: %d text hits, %d vector hits", i, len(byText), len(byVec))
		}
		for k := range byText {
			if byText[k].ID != byVec[k].ID || math.Abs(float64(byText[k].Score-byVec[k].Score)) > 1e-4 {
				t.Fatalf("doc%d hit %d: text %s %f, vector %s %f", i, k, byText[k].ID, byText[k].Score, byVec[k].ID, byVec[k].Score)
			}
		}
	}

	// Upserted with the encoder's id; a vector claiming another model is refused.
	const up = "go_embed_upsert"
	_, err = c.CreateCollection(ctx, up, agentdb.CollectionConfig{Multimodal: true})
	must(t, err)
	items := make([]agentdb.Item, len(texts))
	for i, text := range texts {
		items[i] = agentdb.Item{ID: fmt.Sprintf("d%d", i), Vectors: map[string][]float32{"text": vecs[i]},
			Encoders: map[string]string{"text": encoder}, Payload: map[string]interface{}{"text": text}}
	}
	_, err = c.Upsert(ctx, up, items)
	must(t, err)
	hits, err := c.Search(ctx, up, agentdb.Query{Text: "baking bread at home", Space: "text", TopK: 1, Mode: agentdb.ModeDense})
	must(t, err)
	if len(hits) != 1 || hits[0].ID != "d0" {
		t.Fatalf("search after upsert: %+v", hits)
	}
	bad := agentdb.Item{ID: "x", Vectors: map[string][]float32{"text": vecs[0]}, Encoders: map[string]string{"text": "clip-vit-b-32@onnx"}}
	if _, err := c.Upsert(ctx, up, []agentdb.Item{bad}); !agentdb.IsInvalidArgument(err) {
		t.Fatalf("another encoder: want INVALID_ARGUMENT, got %v", err)
	}

	// Errors.
	_, err = c.CreateCollection(ctx, "go_embed_raw", agentdb.CollectionConfig{Spaces: []agentdb.Space{{Dim: 8}}})
	must(t, err)
	many := make([]string, agentdb.MaxEmbedTexts+1)
	for i := range many {
		many[i] = "x"
	}
	for name, tc := range map[string]struct {
		coll  string
		texts []string
		opts  []agentdb.EmbedOption
		want  func(error) bool
	}{
		"missing collection": {"go_embed_missing", []string{"hello"}, nil, agentdb.IsNotFound},
		"no texts":           {coll, nil, nil, agentdb.IsInvalidArgument},
		"an empty text":      {coll, []string{"fine", "  "}, nil, agentdb.IsInvalidArgument},
		"too many texts":     {coll, many, nil, agentdb.IsInvalidArgument},
		"no text encoder":    {"go_embed_raw", []string{"raw vectors"}, nil, agentdb.IsInvalidArgument},
		"unknown space":      {coll, []string{"hello"}, []agentdb.EmbedOption{agentdb.EmbedSpace("nope")}, agentdb.IsNotFound},
	} {
		if _, _, err := c.Embed(ctx, tc.coll, tc.texts, tc.opts...); !tc.want(err) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if v, _, err := c.Embed(ctx, coll, many[:agentdb.MaxEmbedTexts]); err != nil || len(v) != agentdb.MaxEmbedTexts {
		t.Fatalf("%d texts: %d vectors, %v", agentdb.MaxEmbedTexts, len(v), err)
	}

	// Read access is enough; a key for another collection is refused.
	_, secret, err := c.CreateAPIKey(ctx, "go_embed_reader", "reader", []string{coll}, "")
	must(t, err)
	reader, err := agentdb.Dial(ctx, srv.addr, agentdb.WithAPIKey(secret))
	must(t, err)
	defer reader.Close()
	if v, _, err := reader.Embed(ctx, coll, []string{"readers may embed"}); err != nil || len(v) != 1 {
		t.Fatalf("reader: %v", err)
	}
	if _, _, err := reader.Embed(ctx, "go_embed_raw", []string{"not this one"}); !agentdb.IsPermissionDenied(err) {
		t.Fatalf("reader on another collection: want PERMISSION_DENIED, got %v", err)
	}
}
