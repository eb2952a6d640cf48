package agentdb

import (
	"context"
	"encoding/json"
	"fmt"

	pb "github.com/agentdb/agentdb/sdk/go/agentdbpb"
)

// Item is one stored item: a string id, one vector per named space and a JSON payload.
type Item struct {
	// ID is generated (a UUID) by the server when empty on Upsert.
	ID string
	// Vectors maps a space name to the item's vector there ("" = the only space).
	Vectors map[string][]float32
	// Payload is any JSON object (nil = {}).
	Payload map[string]interface{}
	// Encoders optionally names, per space, the encoder that produced the vector (the
	// encoder Embed returned): the server refuses a vector whose space is bound to
	// another model.
	Encoders map[string]string
}

// UpsertResult is what Upsert wrote.
type UpsertResult struct {
	IDs []string // in request order
	// ConsistencyToken (cluster mode) makes a later read wait for this write.
	ConsistencyToken string
}

func payloadJSON(p map[string]interface{}) (string, error) {
	if p == nil {
		return "", nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("agentdb: payload is not JSON: %w", err)
	}
	return string(b), nil
}

func parsePayload(s string) map[string]interface{} {
	if s == "" {
		return nil
	}
	var m map[string]interface{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return map[string]interface{}{"_raw": s}
	}
	return m
}

func itemFromPB(it *pb.Item) Item {
	out := Item{ID: it.Id, Payload: parsePayload(it.PayloadJson)}
	if len(it.Vectors) > 0 {
		out.Vectors = make(map[string][]float32, len(it.Vectors))
		for k, v := range it.Vectors {
			out.Vectors[k] = v.GetValues()
			if v.GetEncoder() != "" {
				if out.Encoders == nil {
					out.Encoders = map[string]string{}
				}
				out.Encoders[k] = v.GetEncoder()
			}
		}
	}
	return out
}

// Upsert inserts or replaces items (one atomic write).
func (c *Client) Upsert(ctx context.Context, collection string, items []Item) (*UpsertResult, error) {
	req := &pb.UpsertRequest{Collection: collection, Items: make([]*pb.Item, 0, len(items))}
	for _, it := range items {
		p, err := payloadJSON(it.Payload)
		if err != nil {
			return nil, err
		}
		pi := &pb.Item{Id: it.ID, PayloadJson: p, Vectors: make(map[string]*pb.Vector, len(it.Vectors))}
		for k, v := range it.Vectors {
			pi.Vectors[k] = &pb.Vector{Values: v, Encoder: it.Encoders[k]}
		}
		for k := range it.Encoders {
			if _, ok := it.Vectors[k]; !ok {
				return nil, fmt.Errorf("agentdb: item %q: an encoder for space %q, which has no vector", it.ID, k)
			}
		}
		req.Items = append(req.Items, pi)
	}
	r, err := c.stubs.Items.Upsert(ctx, req)
	if err != nil {
		return nil, err
	}
	return &UpsertResult{IDs: r.Ids, ConsistencyToken: r.ConsistencyToken}, nil
}

// MaxEmbedTexts is the most texts one Embed call takes.
const MaxEmbedTexts = 1024

// EmbedOption configures Embed.
type EmbedOption func(*pb.EmbedRequest)

// EmbedSpace embeds with the encoder of this space (default: the collection's text space).
func EmbedSpace(space string) EmbedOption {
	return func(r *pb.EmbedRequest) { r.Space = space }
}

// Embed embeds texts (at most MaxEmbedTexts, none empty) with the encoder bound to a
// space of the collection (its text space unless EmbedSpace says otherwise): the
// vectors the server stores for ingested text and searches with for text queries. It
// returns one vector per text, in order, and the encoder's id (put it in
// Item.Encoders to upsert them). Needs read access.
func (c *Client) Embed(ctx context.Context, collection string, texts []string, opts ...EmbedOption) ([][]float32, string, error) {
	req := &pb.EmbedRequest{Collection: collection, Texts: texts}
	for _, o := range opts {
		o(req)
	}
	r, err := c.stubs.Items.Embed(ctx, req)
	if err != nil {
		return nil, "", err
	}
	out := make([][]float32, len(r.Vectors))
	encoder := ""
	for i, v := range r.Vectors {
		out[i] = v.GetValues()
		if encoder == "" {
			encoder = v.GetEncoder()
		}
	}
	return out, encoder, nil
}

// Get returns the items with these ids that exist, in request order.
func (c *Client) Get(ctx context.Context, collection string, ids []string, withVectors bool) ([]Item, error) {
	r, err := c.stubs.Items.Get(ctx, &pb.GetRequest{Collection: collection, Ids: ids, WithVectors: withVectors})
	if err != nil {
		return nil, err
	}
	out := make([]Item, 0, len(r.Items))
	for _, it := range r.Items {
		out = append(out, itemFromPB(it))
	}
	return out, nil
}

// Delete deletes items by id and returns how many were deleted.
func (c *Client) Delete(ctx context.Context, collection string, ids []string) (uint64, error) {
	r, err := c.stubs.Items.Delete(ctx, &pb.DeleteRequest{Collection: collection, Ids: ids})
	if err != nil {
		return 0, err
	}
	return r.Deleted, nil
}

// DeleteWhere deletes the items matching a filter expression and returns how many.
func (c *Client) DeleteWhere(ctx context.Context, collection, filter string) (uint64, error) {
	r, err := c.stubs.Items.Delete(ctx, &pb.DeleteRequest{Collection: collection, Filter: filter})
	if err != nil {
		return 0, err
	}
	return r.Deleted, nil
}

// Count counts the items matching filter ("" = all live items).
func (c *Client) Count(ctx context.Context, collection, filter string) (uint64, error) {
	r, err := c.stubs.Items.Count(ctx, &pb.CountRequest{Collection: collection, Filter: filter})
	if err != nil {
		return 0, err
	}
	return r.Count, nil
}

// ScrollOptions selects and shapes the pages of Scroll and EachItem.
type ScrollOptions struct {
	Filter string // e.g. `lang = "en"` ("" = every item), within the caller's row policy
	After  string // start after this id ("" = from the first): the previous page's NextAfter
	Limit  uint32 // items per page (per call for EachItem): 100 when 0, at most 1000

	OmitPayload bool // payloads are returned unless set
	WithVectors bool

	ConsistencyToken string // cluster mode: read your writes
	AllowStale       bool   // cluster mode
}

// ScrollPage is one page of a collection's items.
type ScrollPage struct {
	Items []Item // in id order
	// NextAfter is the After of the next page; "" when this page reached the end.
	NextAfter string
}

// Scroll returns one page of the collection's items in id order: those matching
// opts.Filter whose id comes after opts.After, at most opts.Limit. Pass the page's
// NextAfter as After for the next page. EachItem walks every page.
func (c *Client) Scroll(ctx context.Context, collection string, opts ScrollOptions) (*ScrollPage, error) {
	r, err := c.stubs.Items.Scroll(ctx, &pb.ScrollRequest{
		Collection: collection, Filter: opts.Filter, After: opts.After, Limit: opts.Limit,
		WithPayload: !opts.OmitPayload, WithVectors: opts.WithVectors,
		ConsistencyToken: opts.ConsistencyToken, AllowStale: opts.AllowStale,
	})
	if err != nil {
		return nil, err
	}
	out := &ScrollPage{Items: make([]Item, 0, len(r.Items)), NextAfter: r.NextAfter}
	for _, it := range r.Items {
		out.Items = append(out.Items, itemFromPB(it))
	}
	return out, nil
}

// EachItem calls fn with every item of the collection matching opts.Filter (after
// opts.After), in id order, fetching opts.Limit items per Scroll call. It stops at the
// first error, from a call or from fn, and returns it: return a sentinel error from fn
// to stop early.
func (c *Client) EachItem(ctx context.Context, collection string, opts ScrollOptions, fn func(Item) error) error {
	for {
		page, err := c.Scroll(ctx, collection, opts)
		if err != nil {
			return err
		}
		for _, it := range page.Items {
			if err := fn(it); err != nil {
				return err
			}
		}
		if page.NextAfter == "" {
			return nil
		}
		opts.After = page.NextAfter
	}
}

// Mode chooses dense, keyword (BM25) or hybrid retrieval.
type Mode int32

const (
	ModeDefault Mode = Mode(pb.RetrievalMode_RETRIEVAL_DEFAULT) // hybrid for text with a keyword index, else dense
	ModeDense   Mode = Mode(pb.RetrievalMode_RETRIEVAL_DENSE)
	ModeKeyword Mode = Mode(pb.RetrievalMode_RETRIEVAL_KEYWORD)
	ModeHybrid  Mode = Mode(pb.RetrievalMode_RETRIEVAL_HYBRID)
)

// Fusion chooses how the ranked lists of a cross-modal search are fused.
type Fusion int32

const (
	FusionDefault    Fusion = Fusion(pb.Fusion_FUSION_UNSPECIFIED) // calibrated
	FusionWeighted   Fusion = Fusion(pb.Fusion_FUSION_WEIGHTED)
	FusionCalibrated Fusion = Fusion(pb.Fusion_FUSION_CALIBRATED)
	FusionRRF        Fusion = Fusion(pb.Fusion_FUSION_RRF)
)

// Query is a search: by Vector, or by Text, an example Image, an Audio recording or a
// Video clip (embedded by the server's encoders, for multimodal collections), or by a
// Keyword query alone; narrowed by Filter.
type Query struct {
	Vector []float32
	Text   string
	Image  []byte // the bytes of a JPEG, PNG, WebP, GIF, BMP or TIFF file
	Audio  []byte // the bytes of a WAV, FLAC, MP3, Ogg or AAC/M4A file
	Video  []byte // the bytes of an MP4, WebM or MKV file
	// Keyword (BM25) query syntax: words, "phrases", field:word, +must, -must_not.
	Keyword string

	Space  string // "" = the only space (vector) or every space (text, image, ...)
	TopK   uint32 // 10 when 0
	Filter string // e.g. `lang = "en" and year >= 2020`

	WithVectors bool
	OmitPayload bool // payloads are returned unless set
	Explain     bool // per-list ranks, scores and contributions in Hit.Explain

	Mode          Mode
	Fusion        Fusion
	Weights       map[string]float32 // per ranked list, "space/modality"
	KeywordFields map[string]float32 // per keyword field (text, ocr, filename, ...)

	Exact  bool   // bypass the ANN index
	Nprobe uint32 // IVF probes (0 = server default)
	Ef     uint32 // HNSW efSearch (0 = server default)

	ConsistencyToken string // cluster mode: read your writes
	AllowStale       bool   // cluster mode
}

// ListScore is one ranked list's part in a fused hit (Query.Explain).
type ListScore struct {
	List         string // "space/modality" or "keyword"
	Rank         uint32 // 1-based
	Score        float32
	Contribution float32
	Matched      []string // keyword list: "field: term term"
	Snippet      string   // keyword list: the best passage, matches in **
	Coverage     float32  // keyword list: idf-weighted share of the query matched
}

// Hit is one search result.
type Hit struct {
	ID      string
	Score   float32 // similarity (cosine, ip; higher is closer) or squared L2 distance
	Payload map[string]interface{}
	Vector  []float32
	// For text/image/audio/video queries (fused results): the ingested file, the
	// modality and the part that matched ("chunk 2/5", "image 451x300", ...).
	Source, Modality, Part string
	Explain                []ListScore
}

func (q *Query) toPB(collection string) *pb.SearchRequest {
	req := &pb.SearchRequest{
		Collection: collection, Space: q.Space, TopK: q.TopK, Filter: q.Filter,
		WithPayload: !q.OmitPayload, WithVectors: q.WithVectors, Text: q.Text,
		Image: q.Image, Audio: q.Audio, Video: q.Video, Explain: q.Explain,
		Fusion: pb.Fusion(q.Fusion), Weights: q.Weights, Mode: pb.RetrievalMode(q.Mode),
		KeywordQuery: q.Keyword, KeywordFields: q.KeywordFields,
		ConsistencyToken: q.ConsistencyToken, AllowStale: q.AllowStale,
	}
	if q.Vector != nil {
		req.Vector = &pb.Vector{Values: q.Vector}
	}
	if q.Exact || q.Nprobe > 0 || q.Ef > 0 {
		req.Params = &pb.SearchParams{Exact: q.Exact, Nprobe: q.Nprobe, Ef: q.Ef}
	}
	return req
}

func hitsFromPB(hs []*pb.Hit) []Hit {
	out := make([]Hit, 0, len(hs))
	for _, h := range hs {
		hit := Hit{ID: h.Id, Score: h.Score, Payload: parsePayload(h.PayloadJson), Source: h.Source, Modality: h.Modality, Part: h.Part}
		if h.Vector != nil {
			hit.Vector = h.Vector.Values
		}
		for _, e := range h.Explain {
			hit.Explain = append(hit.Explain, ListScore{List: e.List, Rank: e.Rank, Score: e.Score, Contribution: e.Contribution, Matched: e.Matched, Snippet: e.Snippet, Coverage: e.Coverage})
		}
		out = append(out, hit)
	}
	return out
}

// Search runs one query; hits are best first.
func (c *Client) Search(ctx context.Context, collection string, q Query) ([]Hit, error) {
	r, err := c.stubs.Items.Search(ctx, q.toPB(collection))
	if err != nil {
		return nil, err
	}
	return hitsFromPB(r.Hits), nil
}

// SearchBatch runs one vector query per vector with q's space, top k, filter and
// parameters; one hit list per vector.
func (c *Client) SearchBatch(ctx context.Context, collection string, vectors [][]float32, q Query) ([][]Hit, error) {
	req := &pb.SearchBatchRequest{Collection: collection, Space: q.Space, TopK: q.TopK, Filter: q.Filter, WithPayload: !q.OmitPayload, WithVectors: q.WithVectors}
	for _, v := range vectors {
		req.Vectors = append(req.Vectors, &pb.Vector{Values: v})
	}
	if q.Exact || q.Nprobe > 0 || q.Ef > 0 {
		req.Params = &pb.SearchParams{Exact: q.Exact, Nprobe: q.Nprobe, Ef: q.Ef}
	}
	r, err := c.stubs.Items.SearchBatch(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([][]Hit, 0, len(r.Results))
	for _, rs := range r.Results {
		out = append(out, hitsFromPB(rs.Hits))
	}
	return out, nil
}
