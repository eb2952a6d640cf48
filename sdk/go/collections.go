package agentdb

import (
	"context"

	pb "github.com/agentdb/agentdb/sdk/go/agentdbpb"
)

// Metric is a space's similarity.
type Metric int32

const (
	// Cosine (the default): vectors are normalised on the way in; score = cosine
	// similarity, higher is closer.
	Cosine Metric = Metric(pb.Metric_METRIC_COSINE)
	// InnerProduct: score = inner product, higher is closer.
	InnerProduct Metric = Metric(pb.Metric_METRIC_INNER_PRODUCT)
	// L2: score = squared Euclidean distance, lower is closer.
	L2 Metric = Metric(pb.Metric_METRIC_L2)
)

func (m Metric) String() string {
	switch m {
	case InnerProduct:
		return "ip"
	case L2:
		return "l2"
	}
	return "cosine"
}

// Space is one named vector space of a collection.
type Space struct {
	Name    string // "default" when empty
	Dim     uint32
	Metric  Metric // Cosine when zero
	Index   string // FAISS index-factory string, "HNSW32" when empty
	Encoder string // set by the server for multimodal spaces
}

// KeywordOptions configure a collection's keyword (BM25) index.
type KeywordOptions struct {
	Disabled   bool
	Language   string   // english (default), french, german, ...
	Searchable []string // payload fields indexed into the `meta` keyword field
}

// CollectionConfig says how to create a collection: explicit Spaces, and/or Multimodal
// for the default spaces of the server's installed encoders (what Ingest and text,
// image and audio queries need).
type CollectionConfig struct {
	Spaces     []Space
	Multimodal bool
	Keyword    *KeywordOptions
	// Cluster mode only: the number of shards (0 = not sharded) and replicas.
	Shards, Replicas uint32
}

// SpaceInfo is a space and the indexes in use for it.
type SpaceInfo struct {
	Space
	IndexKinds []string // e.g. "HNSW32 (2 segments)", "exact (write buffer)"
}

// CollectionInfo describes a collection.
type CollectionInfo struct {
	Name              string
	Spaces            []SpaceInfo
	Count             uint64 // live items
	Unindexed         uint64 // live items not yet in an indexed segment
	Segments          uint64
	DeletedRows       uint64
	DiskBytes         uint64
	LastLSN           uint64
	Shards, Replicas  uint32
	KeywordLanguage   string // "" = no keyword index
	KeywordSearchable []string
}

func spaceToPB(s Space) *pb.SpaceSpec {
	return &pb.SpaceSpec{Name: s.Name, Dim: s.Dim, Metric: pb.Metric(s.Metric), Index: s.Index, Encoder: s.Encoder}
}

func spaceFromPB(s *pb.SpaceSpec) Space {
	if s == nil {
		return Space{}
	}
	m := Metric(s.Metric)
	if m == 0 {
		m = Cosine
	}
	return Space{Name: s.Name, Dim: s.Dim, Metric: m, Index: s.Index, Encoder: s.Encoder}
}

func collectionFromPB(c *pb.CollectionInfo) *CollectionInfo {
	if c == nil {
		return nil
	}
	out := &CollectionInfo{
		Name: c.Name, Count: c.Count, Unindexed: c.Unindexed, Segments: c.Segments,
		DeletedRows: c.DeletedRows, DiskBytes: c.DiskBytes, LastLSN: c.LastLsn,
		Shards: c.Shards, Replicas: c.Replicas, KeywordLanguage: c.KeywordLanguage,
		KeywordSearchable: c.KeywordSearchable,
	}
	for _, s := range c.Spaces {
		out.Spaces = append(out.Spaces, SpaceInfo{Space: spaceFromPB(s.Spec), IndexKinds: s.IndexKinds})
	}
	return out
}

// CreateCollection creates a collection (ALREADY_EXISTS if the name is taken).
func (c *Client) CreateCollection(ctx context.Context, name string, cfg CollectionConfig) (*CollectionInfo, error) {
	req := &pb.CreateCollectionRequest{Name: name, Multimodal: cfg.Multimodal, Shards: cfg.Shards, Replicas: cfg.Replicas}
	for _, s := range cfg.Spaces {
		req.Spaces = append(req.Spaces, spaceToPB(s))
	}
	if k := cfg.Keyword; k != nil {
		req.Keyword = &pb.KeywordOptions{Disabled: k.Disabled, Language: k.Language, Searchable: k.Searchable}
	}
	r, err := c.stubs.Collections.Create(ctx, req)
	if err != nil {
		return nil, err
	}
	return collectionFromPB(r.Info), nil
}

// ListCollections lists the collections the caller may see.
func (c *Client) ListCollections(ctx context.Context) ([]*CollectionInfo, error) {
	r, err := c.stubs.Collections.List(ctx, &pb.ListCollectionsRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]*CollectionInfo, 0, len(r.Collections))
	for _, ci := range r.Collections {
		out = append(out, collectionFromPB(ci))
	}
	return out, nil
}

// DescribeCollection describes one collection (NOT_FOUND if there is none).
func (c *Client) DescribeCollection(ctx context.Context, name string) (*CollectionInfo, error) {
	r, err := c.stubs.Collections.Describe(ctx, &pb.DescribeCollectionRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return collectionFromPB(r.Info), nil
}

// DropCollection deletes a collection and its data.
func (c *Client) DropCollection(ctx context.Context, name string) error {
	_, err := c.stubs.Collections.Drop(ctx, &pb.DropCollectionRequest{Name: name})
	return err
}

// FlushCollection seals buffered writes into indexed segments now (and with optimize,
// merges all segments into one).
func (c *Client) FlushCollection(ctx context.Context, name string, optimize bool) (*CollectionInfo, error) {
	r, err := c.stubs.Collections.Flush(ctx, &pb.FlushRequest{Collection: name, Optimize: optimize})
	if err != nil {
		return nil, err
	}
	return collectionFromPB(r.Info), nil
}
