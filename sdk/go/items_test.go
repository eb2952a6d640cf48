package agentdb_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
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

func TestScrollPagesInIDOrder(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	c := admin(t)
	_, err := c.CreateCollection(ctx, "go_scroll", agentdb.CollectionConfig{Spaces: []agentdb.Space{{Dim: 2, Metric: agentdb.InnerProduct, Index: "Flat"}}})
	must(t, err)
	ids := make([]string, 25)
	items := make([]agentdb.Item, 0, 25)
	for i := range ids {
		ids[i] = fmt.Sprintf("k%02d", i)
	}
	for k := 0; k < 25; k++ {
		i := (k * 7) % 25 // written out of id order
		items = append(items, agentdb.Item{ID: ids[i], Vectors: map[string][]float32{"": {float32(i), 1}}, Payload: map[string]interface{}{"n": i, "even": i%2 == 0}})
	}
	_, err = c.Upsert(ctx, "go_scroll", items)
	must(t, err)

	var got, nexts []string
	var sizes []int
	opts := agentdb.ScrollOptions{Limit: 10}
	for {
		page, err := c.Scroll(ctx, "go_scroll", opts)
		must(t, err)
		sizes = append(sizes, len(page.Items))
		nexts = append(nexts, page.NextAfter)
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
		if page.NextAfter == "" {
			break
		}
		opts.After = page.NextAfter
	}
	if fmt.Sprint(sizes) != "[10 10 5]" || fmt.Sprint(nexts) != "[k09 k19 ]" || fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("pages of %v, next %q, ids %v", sizes, nexts, got)
	}
	first, err := c.Scroll(ctx, "go_scroll", agentdb.ScrollOptions{Limit: 1})
	must(t, err)
	if it := first.Items[0]; it.ID != "k00" || it.Payload["n"] != float64(0) || it.Payload["even"] != true || it.Vectors != nil {
		t.Fatalf("first item: %+v", it)
	}

	// A filter, vectors, ids without payloads.
	even, err := c.Scroll(ctx, "go_scroll", agentdb.ScrollOptions{Filter: "even = true", Limit: 5, WithVectors: true, OmitPayload: true})
	must(t, err)
	if len(even.Items) != 5 || even.Items[4].ID != "k08" || even.NextAfter != "k08" || even.Items[1].Payload != nil {
		t.Fatalf("filtered page: %+v", even)
	}
	if v := even.Items[1].Vectors["default"]; len(v) != 2 || v[0] != 2 || v[1] != 1 {
		t.Fatalf("vector of k02: %v", even.Items[1].Vectors)
	}

	// EachItem walks every page; an error from fn stops it.
	got = got[:0]
	must(t, c.EachItem(ctx, "go_scroll", agentdb.ScrollOptions{Limit: 10}, func(it agentdb.Item) error {
		got = append(got, it.ID)
		return nil
	}))
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("EachItem: %v", got)
	}
	got = got[:0]
	must(t, c.EachItem(ctx, "go_scroll", agentdb.ScrollOptions{Filter: "n >= 20", Limit: 2, WithVectors: true}, func(it agentdb.Item) error {
		if it.Payload["n"] != float64(it.Vectors["default"][0]) {
			return fmt.Errorf("item %s: payload %v, vector %v", it.ID, it.Payload, it.Vectors)
		}
		got = append(got, it.ID)
		return nil
	}))
	if fmt.Sprint(got) != fmt.Sprint(ids[20:]) {
		t.Fatalf("EachItem n >= 20: %v", got)
	}
	stop := errors.New("stop")
	seen := 0
	if err := c.EachItem(ctx, "go_scroll", agentdb.ScrollOptions{Limit: 1}, func(agentdb.Item) error { seen++; return stop }); err != stop || seen != 1 {
		t.Fatalf("EachItem stopped with %v after %d items", err, seen)
	}

	if _, err := c.Scroll(ctx, "go_scroll", agentdb.ScrollOptions{Limit: 1001}); !agentdb.IsInvalidArgument(err) {
		t.Fatalf("limit 1001: want INVALID_ARGUMENT, got %v", err)
	}
	if _, err := c.Scroll(ctx, "go_scroll", agentdb.ScrollOptions{Filter: "n = = 1"}); !agentdb.IsInvalidArgument(err) {
		t.Fatalf("bad filter: want INVALID_ARGUMENT, got %v", err)
	}
	if err := c.EachItem(ctx, "go_scroll_missing", agentdb.ScrollOptions{}, func(agentdb.Item) error { return nil }); !agentdb.IsNotFound(err) {
		t.Fatalf("missing collection: want NOT_FOUND, got %v", err)
	}
}

func TestWhoAmI(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	a := admin(t)
	_, err := a.CreateCollection(ctx, "go_whoami", agentdb.CollectionConfig{Spaces: []agentdb.Space{{Dim: 2}}})
	must(t, err)
	_, err = a.Upsert(ctx, "go_whoami", []agentdb.Item{
		{ID: "a", Vectors: map[string][]float32{"": {1, 0}}, Payload: map[string]interface{}{"team": "x"}},
		{ID: "b", Vectors: map[string][]float32{"": {1, 0}}, Payload: map[string]interface{}{"team": "y"}},
		{ID: "c", Vectors: map[string][]float32{"": {1, 0}}, Payload: map[string]interface{}{"team": "x"}},
	})
	must(t, err)
	me, err := a.WhoAmI(ctx, "go_whoami")
	must(t, err)
	all := agentdb.CollectionPermissions{Collection: "go_whoami", Read: true, Write: true, Admin: true}
	if !me.AuthEnabled || me.Role != "admin" || !me.CanAdmin || !strings.HasPrefix(me.ID, "key:") || len(me.Permissions) != 1 || me.Permissions[0] != all {
		t.Fatalf("admin: %+v", me)
	}

	// A reader: reads every collection, writes none, no server-wide admin.
	key, secret, err := a.CreateAPIKey(ctx, "go-whoami-reader", "reader", nil, "")
	must(t, err)
	reader, err := agentdb.Dial(ctx, srv.addr, agentdb.WithAPIKey(secret))
	must(t, err)
	defer reader.Close()
	who, err := reader.WhoAmI(ctx, "go_whoami", "go_whoami_other")
	must(t, err)
	if !who.AuthEnabled || who.ID != "key:"+key.ID || who.Name != "go-whoami-reader" || who.Role != "reader" || who.CanAdmin ||
		len(who.Collections) != 0 || who.RowFilter != "" || len(who.Permissions) != 2 {
		t.Fatalf("reader: %+v", who)
	}
	for i, name := range []string{"go_whoami", "go_whoami_other"} {
		p, ok := who.Permission(name)
		if want := (agentdb.CollectionPermissions{Collection: name, Read: true}); !ok || p != want || who.Permissions[i] != want {
			t.Fatalf("reader on %s: %+v", name, who.Permissions)
		}
	}
	if _, ok := who.Permission("unasked"); ok {
		t.Fatal("a permission for a collection not asked about")
	}
	page, err := reader.Scroll(ctx, "go_whoami", agentdb.ScrollOptions{})
	must(t, err)
	if len(page.Items) != 3 {
		t.Fatalf("reader scroll: %+v", page)
	}

	// A writer scoped to one collection with a row policy: scroll stays within it.
	_, wsecret, err := a.CreateAPIKey(ctx, "go-whoami-writer", "writer", []string{"go_whoami"}, `team = "x"`)
	must(t, err)
	w, err := agentdb.Dial(ctx, srv.addr, agentdb.WithAPIKey(wsecret))
	must(t, err)
	defer w.Close()
	who, err = w.WhoAmI(ctx, "go_whoami", "go_whoami_other")
	must(t, err)
	if who.Role != "writer" || fmt.Sprint(who.Collections) != "[go_whoami]" || who.RowFilter != `team = "x"` ||
		who.Permissions[0] != (agentdb.CollectionPermissions{Collection: "go_whoami", Read: true, Write: true}) ||
		who.Permissions[1] != (agentdb.CollectionPermissions{Collection: "go_whoami_other"}) {
		t.Fatalf("scoped writer: %+v", who)
	}
	var seen []string
	must(t, w.EachItem(ctx, "go_whoami", agentdb.ScrollOptions{Limit: 1}, func(it agentdb.Item) error {
		seen = append(seen, it.ID)
		return nil
	}))
	if fmt.Sprint(seen) != "[a c]" {
		t.Fatalf("scoped scroll: %v", seen)
	}

	// Authentication off: the local operator may do everything.
	open, err := startServer()
	must(t, err)
	defer open.stop()
	local, err := agentdb.Dial(ctx, open.addr)
	must(t, err)
	defer local.Close()
	who, err = local.WhoAmI(ctx, "anything")
	must(t, err)
	if who.AuthEnabled || who.ID != "local" || who.Role != "admin" || !who.CanAdmin ||
		len(who.Permissions) != 1 || who.Permissions[0] != (agentdb.CollectionPermissions{Collection: "anything", Read: true, Write: true, Admin: true}) {
		t.Fatalf("local: %+v", who)
	}
}
