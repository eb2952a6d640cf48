package agentdb_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	agentdb "github.com/agentdb/agentdb/sdk/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestAuthAPIKeysAndErrors(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	a := admin(t)
	_, err := a.CreateCollection(ctx, "auth_docs", agentdb.CollectionConfig{Spaces: []agentdb.Space{{Dim: 2}}})
	must(t, err)

	// No credentials: UNAUTHENTICATED, as an *Error, through every way of asking.
	anon, err := agentdb.Dial(ctx, srv.addr)
	must(t, err)
	defer anon.Close()
	_, err = anon.ListCollections(ctx)
	var e *agentdb.Error
	if !errors.As(err, &e) || e.Code != codes.Unauthenticated || !agentdb.IsUnauthenticated(err) ||
		!errors.Is(err, agentdb.ErrUnauthenticated) || status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no key: want UNAUTHENTICATED, got %#v", err)
	}
	if e.Method != "/agentdb.v1.Collections/List" || e.Message == "" {
		t.Fatalf("error lacks the method or message: %+v", e)
	}
	// A wrong key.
	bad, err := agentdb.Dial(ctx, srv.addr, agentdb.WithAPIKey("adb_nope_nope"))
	must(t, err)
	defer bad.Close()
	if _, err := bad.Count(ctx, "auth_docs", ""); !agentdb.IsUnauthenticated(err) {
		t.Fatalf("bad key: want UNAUTHENTICATED, got %v", err)
	}

	// A reader key (created through the Security service) reads but cannot write.
	key, secret, err := a.CreateAPIKey(ctx, "go-reader", "reader", nil, "")
	must(t, err)
	if key.Role != "reader" || secret == "" || key.ID == "" {
		t.Fatalf("created key: %+v secret %q", key, secret)
	}
	// WithTokenSource: asked on every call (how a refreshed OIDC token is passed).
	calls := 0
	reader, err := agentdb.Dial(ctx, srv.addr, agentdb.WithTokenSource(func(context.Context) (string, error) {
		calls++
		return secret, nil
	}))
	must(t, err)
	defer reader.Close()
	n, err := reader.Count(ctx, "auth_docs", "")
	must(t, err)
	if n != 0 || calls != 1 {
		t.Fatalf("reader count: %d, token asked %d times", n, calls)
	}
	_, err = reader.Upsert(ctx, "auth_docs", []agentdb.Item{{ID: "x", Vectors: map[string][]float32{"": {1, 0}}}})
	if !agentdb.IsPermissionDenied(err) || !errors.Is(err, agentdb.ErrPermissionDenied) {
		t.Fatalf("reader upsert: want PERMISSION_DENIED, got %v", err)
	}
	if e := err.(*agentdb.Error); e.Attempts != 1 {
		t.Fatalf("a refused write must not be retried: %d attempts", e.Attempts)
	}
	if _, err := reader.CreateCollection(ctx, "reader_made", agentdb.CollectionConfig{Spaces: []agentdb.Space{{Dim: 2}}}); !agentdb.IsPermissionDenied(err) {
		t.Fatalf("reader create: want PERMISSION_DENIED, got %v", err)
	}
	// Revoked: UNAUTHENTICATED.
	_, err = a.RevokeAPIKey(ctx, key.ID)
	must(t, err)
	if _, err := reader.Count(ctx, "auth_docs", ""); !agentdb.IsUnauthenticated(err) {
		t.Fatalf("revoked key: want UNAUTHENTICATED, got %v", err)
	}
	keys, err := a.ListAPIKeys(ctx)
	must(t, err)
	found := false
	for _, k := range keys {
		found = found || (k.ID == key.ID && k.Revoked)
	}
	if !found {
		t.Fatalf("revoked key not listed as revoked: %+v", keys)
	}
}

func TestVectorRoundTripAndFilters(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	c := admin(t)
	info, err := c.CreateCollection(ctx, "go_vectors", agentdb.CollectionConfig{
		Spaces: []agentdb.Space{{Name: "v", Dim: 3, Metric: agentdb.L2, Index: "Flat"}},
	})
	must(t, err)
	if info.Name != "go_vectors" || len(info.Spaces) != 1 || info.Spaces[0].Dim != 3 || info.Spaces[0].Metric != agentdb.L2 {
		t.Fatalf("created: %+v", info)
	}
	if _, err := c.CreateCollection(ctx, "go_vectors", agentdb.CollectionConfig{Spaces: []agentdb.Space{{Dim: 3}}}); !agentdb.IsAlreadyExists(err) {
		t.Fatalf("second create: want ALREADY_EXISTS, got %v", err)
	}
	items := []agentdb.Item{
		{ID: "a", Vectors: map[string][]float32{"v": {1, 0, 0}}, Payload: map[string]interface{}{"lang": "en", "year": 2021, "tags": []string{"x", "y"}}},
		{ID: "b", Vectors: map[string][]float32{"v": {0, 1, 0}}, Payload: map[string]interface{}{"lang": "fr", "year": 2019}},
		{ID: "c", Vectors: map[string][]float32{"v": {0.9, 0.1, 0}}, Payload: map[string]interface{}{"lang": "en", "year": 2018}},
		{Vectors: map[string][]float32{"v": {0, 0, 1}}}, // id generated
	}
	up, err := c.Upsert(ctx, "go_vectors", items)
	must(t, err)
	if len(up.IDs) != 4 || up.IDs[0] != "a" || up.IDs[2] != "c" || len(up.IDs[3]) < 8 {
		t.Fatalf("upsert ids: %v", up.IDs)
	}
	got, err := c.Get(ctx, "go_vectors", []string{"c", "missing", "a"}, true)
	must(t, err)
	if len(got) != 2 || got[0].ID != "c" || got[1].ID != "a" {
		t.Fatalf("get: %+v", got)
	}
	if v := got[0].Vectors["v"]; len(v) != 3 || v[0] != 0.9 || v[1] != 0.1 || v[2] != 0 {
		t.Fatalf("vector round trip: %v", v)
	}
	if got[1].Payload["lang"] != "en" || got[1].Payload["year"] != float64(2021) {
		t.Fatalf("payload round trip: %v", got[1].Payload)
	}

	hits, err := c.Search(ctx, "go_vectors", agentdb.Query{Vector: []float32{1, 0, 0}, TopK: 3, WithVectors: true})
	must(t, err)
	if len(hits) != 3 || hits[0].ID != "a" || hits[1].ID != "c" || hits[0].Score != 0 {
		t.Fatalf("vector search: %+v", hits)
	}
	if want := float32(0.1*0.1 + 0.1*0.1); math.Abs(float64(hits[1].Score-want)) > 1e-5 {
		t.Fatalf("l2 score of c: %v, want %v", hits[1].Score, want)
	}
	if len(hits[0].Vector) != 3 || hits[0].Payload["lang"] != "en" {
		t.Fatalf("hit vector/payload: %+v", hits[0])
	}
	// Filters.
	hits, err = c.Search(ctx, "go_vectors", agentdb.Query{Vector: []float32{1, 0, 0}, TopK: 10, Filter: `lang = "en" and year >= 2020`})
	must(t, err)
	if len(hits) != 1 || hits[0].ID != "a" {
		t.Fatalf("filtered search: %+v", hits)
	}
	hits, err = c.Search(ctx, "go_vectors", agentdb.Query{Vector: []float32{1, 0, 0}, TopK: 10, Filter: `tags in ["y"]`, OmitPayload: true})
	must(t, err)
	if len(hits) != 1 || hits[0].ID != "a" || hits[0].Payload != nil {
		t.Fatalf("array filter: %+v", hits)
	}
	n, err := c.Count(ctx, "go_vectors", `lang = "en"`)
	must(t, err)
	if n != 2 {
		t.Fatalf("count lang=en: %d", n)
	}
	batch, err := c.SearchBatch(ctx, "go_vectors", [][]float32{{1, 0, 0}, {0, 1, 0}}, agentdb.Query{TopK: 1})
	must(t, err)
	if len(batch) != 2 || batch[0][0].ID != "a" || batch[1][0].ID != "b" {
		t.Fatalf("batch: %+v", batch)
	}
	if _, err := c.Count(ctx, "go_vectors", `lang = = "en"`); !agentdb.IsInvalidArgument(err) {
		t.Fatalf("bad filter: want INVALID_ARGUMENT, got %v", err)
	}
	if _, err := c.Upsert(ctx, "go_vectors", []agentdb.Item{{ID: "z", Vectors: map[string][]float32{"v": {1, 2}}}}); !agentdb.IsInvalidArgument(err) {
		t.Fatalf("wrong dimension: want INVALID_ARGUMENT, got %v", err)
	}
	d, err := c.DeleteWhere(ctx, "go_vectors", "year < 2020")
	must(t, err)
	if d != 2 {
		t.Fatalf("delete where year < 2020: %d", d)
	}
	d, err = c.Delete(ctx, "go_vectors", []string{up.IDs[3]})
	must(t, err)
	if d != 1 {
		t.Fatalf("delete by id: %d", d)
	}
	info, err = c.FlushCollection(ctx, "go_vectors", true)
	must(t, err)
	if info.Count != 1 {
		t.Fatalf("count after deletes: %+v", info)
	}
	must(t, c.DropCollection(ctx, "go_vectors"))
	if _, err := c.DescribeCollection(ctx, "go_vectors"); !agentdb.IsNotFound(err) || !errors.Is(err, agentdb.ErrNotFound) {
		t.Fatalf("describe dropped: want NOT_FOUND, got %v", err)
	}
}
