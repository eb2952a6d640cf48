package agentdb

import (
	"context"
	"time"

	pb "github.com/agentdb/agentdb/sdk/go/agentdbpb"
)

// ServerStatus is the server's health and usage.
type ServerStatus struct {
	Version           string
	Uptime            time.Duration
	RSSBytes          uint64
	DataDir           string
	DataBytes         uint64
	DiskFreeBytes     uint64
	DiskTotalBytes    uint64
	Collections       []*CollectionInfo
	QueriesPerSecond  float64
	UpsertsPerSecond  float64
	Device            string // "cpu" or the GPU in use
	DamagedCollection map[string]string
}

// Status returns the server's status.
func (c *Client) Status(ctx context.Context) (*ServerStatus, error) {
	r, err := c.stubs.Server.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return nil, err
	}
	out := &ServerStatus{Version: r.Version, Uptime: time.Duration(r.UptimeSeconds * float64(time.Second)), RSSBytes: r.RssBytes, DataDir: r.DataDir, DataBytes: r.DataBytes, DiskFreeBytes: r.DiskFreeBytes, DiskTotalBytes: r.DiskTotalBytes, QueriesPerSecond: r.QueriesPerSecond, UpsertsPerSecond: r.UpsertsPerSecond, Device: r.Device}
	for _, ci := range r.Collections {
		out.Collections = append(out.Collections, collectionFromPB(ci))
	}
	if len(r.Damaged) > 0 {
		out.DamagedCollection = map[string]string{}
		for _, d := range r.Damaged {
			out.DamagedCollection[d.Name] = d.Reason
		}
	}
	return out, nil
}

// Model is an installed encoder.
type Model struct {
	Name, Version, Modality string
	Dim                     uint32
	SHA256, Source          string
	Encoder                 string // the id collections record
	Loaded                  bool
}

// Models lists the server's models.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	r, err := c.stubs.Models.List(ctx, &pb.ListModelsRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]Model, 0, len(r.Models))
	for _, m := range r.Models {
		out = append(out, Model{Name: m.Name, Version: m.Version, Modality: m.Modality, Dim: m.Dim, SHA256: m.Sha256, Source: m.Source, Encoder: m.Encoder, Loaded: m.Loaded})
	}
	return out, nil
}

// APIKey describes an API key (never its secret).
type APIKey struct {
	ID, Name, Role string // role: reader, writer or admin
	Collections    []string
	Created        time.Time
	Revoked        bool
	RowFilter      string
}

func keyFromPB(k *pb.ApiKeyInfo) *APIKey {
	if k == nil {
		return nil
	}
	return &APIKey{ID: k.Id, Name: k.Name, Role: k.Role, Collections: k.Collections, Created: time.Unix(int64(k.CreatedUnix), 0), Revoked: k.Revoked, RowFilter: k.RowFilter}
}

// CreateAPIKey creates a key (admin; security.auth = "api_key") and returns it with its
// secret, which is shown only once. collections nil = every collection; rowFilter ""
// = no row-level policy.
func (c *Client) CreateAPIKey(ctx context.Context, name, role string, collections []string, rowFilter string) (*APIKey, string, error) {
	r, err := c.stubs.Security.CreateKey(ctx, &pb.CreateKeyRequest{Name: name, Role: role, Collections: collections, RowFilter: rowFilter})
	if err != nil {
		return nil, "", err
	}
	return keyFromPB(r.Key), r.Secret, nil
}

// ListAPIKeys lists the keys (admin).
func (c *Client) ListAPIKeys(ctx context.Context) ([]*APIKey, error) {
	r, err := c.stubs.Security.ListKeys(ctx, &pb.ListKeysRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]*APIKey, 0, len(r.Keys))
	for _, k := range r.Keys {
		out = append(out, keyFromPB(k))
	}
	return out, nil
}

// RevokeAPIKey revokes a key by id (admin).
func (c *Client) RevokeAPIKey(ctx context.Context, id string) (*APIKey, error) {
	r, err := c.stubs.Security.RevokeKey(ctx, &pb.RevokeKeyRequest{Id: id})
	if err != nil {
		return nil, err
	}
	return keyFromPB(r.Key), nil
}

// CollectionPermissions is what the caller may do with one collection (Admin: create
// and drop it).
type CollectionPermissions struct {
	Collection         string
	Read, Write, Admin bool
}

// Identity is who the caller is and what it may do (WhoAmI). With authentication off
// the caller is "local" and may do everything. The server still checks every request.
type Identity struct {
	AuthEnabled bool
	ID          string // key:<id>, oidc:<sub>, mtls:<name>; "local" when authentication is off
	Name        string
	Role        string   // reader, writer or admin
	Collections []string // the key's collection scope; empty = every collection
	RowFilter   string   // the row-level policy on every read and write ("" = none)
	// CanAdmin: server-wide admin (create any collection, manage keys, see every agent
	// and run).
	CanAdmin bool
	// Permissions has one entry per collection asked about, in request order.
	Permissions []CollectionPermissions
}

// Permission returns the permissions on a collection WhoAmI was asked about.
func (id *Identity) Permission(collection string) (CollectionPermissions, bool) {
	for _, p := range id.Permissions {
		if p.Collection == collection {
			return p, true
		}
	}
	return CollectionPermissions{}, false
}

// WhoAmI returns who this client is (its key, token or certificate; "local" when the
// server has authentication off) and what it may do, server-wide and on each of the
// collections named. For showing only what the caller may use: the server still checks
// every request.
func (c *Client) WhoAmI(ctx context.Context, collections ...string) (*Identity, error) {
	r, err := c.stubs.Security.WhoAmI(ctx, &pb.WhoAmIRequest{Collections: collections})
	if err != nil {
		return nil, err
	}
	out := &Identity{AuthEnabled: r.AuthEnabled, ID: r.Id, Name: r.Name, Role: r.Role, Collections: r.Collections, RowFilter: r.RowFilter, CanAdmin: r.CanAdmin}
	for _, p := range r.Permissions {
		out.Permissions = append(out.Permissions, CollectionPermissions{Collection: p.Collection, Read: p.Read, Write: p.Write, Admin: p.Admin})
	}
	return out, nil
}
