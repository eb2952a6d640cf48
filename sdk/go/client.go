// Package agentdb is the Go client for AgentDB, a multimodal retrieval engine for AI
// agents, over its gRPC API (agentdb.v1).
//
//	c, err := agentdb.Dial(ctx, "127.0.0.1:7720", agentdb.WithAPIKey(key))
//	defer c.Close()
//	hits, err := c.Search(ctx, "notes", agentdb.Query{Text: "a cat on a sofa", TopK: 5})
//
// Every method returns an *Error for a failed call (the gRPC code and message, and the
// server's retry hint). Calls are retried with exponential backoff and jitter when the
// server refused them before doing anything (RESOURCE_EXHAUSTED with a `retry-after-ms`
// hint, or an overloaded server), and reads also when the server is UNAVAILABLE; see
// RetryPolicy. The generated stubs of every service are available from Client.Stubs for
// anything this package does not wrap.
package agentdb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"sync"
	"time"

	pb "github.com/agentdb/agentdb/sdk/go/agentdbpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

// Version of this SDK.
const Version = "0.1.0"

// DefaultMaxMessageBytes is the largest message sent or received by default (the
// server's default limit is 64 MiB).
const DefaultMaxMessageBytes = 64 << 20

// RetryPolicy says how failed calls are retried. A call is retried only when retrying
// cannot apply it twice: the server answered RESOURCE_EXHAUSTED with a `retry-after-ms`
// hint (a request-rate quota) or because it was overloaded (the request was refused
// before it ran), or — for reads only (List, Describe, Get, Count, Search, Status, ...)
// — UNAVAILABLE. Storage quotas (RESOURCE_EXHAUSTED without a hint) are not retried: the
// same write would fail the same way.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt (0 = never retry).
	MaxRetries int
	// InitialBackoff is the wait before the first retry when the server gave no hint;
	// it doubles on every retry up to MaxBackoff, with jitter (a random 50-100 %).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// DefaultRetryPolicy: 4 retries, 100 ms doubling up to 5 s; a server hint wins.
var DefaultRetryPolicy = RetryPolicy{MaxRetries: 4, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}

type options struct {
	token       func(ctx context.Context) (string, error)
	tlsConfig   *tls.Config
	retry       RetryPolicy
	dialOptions []grpc.DialOption
	maxMsg      int
	noBlock     bool
}

// Option configures Dial.
type Option func(*options)

// WithAPIKey authenticates every call with an API key (`authorization: Bearer KEY`).
func WithAPIKey(key string) Option {
	key = strings.TrimSpace(key)
	return func(o *options) { o.token = func(context.Context) (string, error) { return key, nil } }
}

// WithToken authenticates every call with an OIDC/JWT access token
// (`authorization: Bearer TOKEN`).
func WithToken(token string) Option { return WithAPIKey(token) }

// WithTokenSource authenticates every call with the token f returns, called per call
// (for OIDC tokens that expire: return a refreshed one).
func WithTokenSource(f func(ctx context.Context) (string, error)) Option {
	return func(o *options) { o.token = f }
}

// WithTLS connects over TLS, trusting rootCAs (nil: the system's roots). An address
// with the https:// scheme turns TLS on with the system's roots by itself.
func WithTLS(rootCAs *x509.CertPool) Option {
	return func(o *options) { o.tlsConfig = &tls.Config{RootCAs: rootCAs, MinVersion: tls.VersionTLS12} }
}

// WithTLSConfig connects over TLS with a full configuration, e.g. with a client
// certificate (Certificates) for servers that require mutual TLS.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) { o.tlsConfig = cfg.Clone() }
}

// WithRetries sets the number of retries of the default policy (0 turns retries off).
func WithRetries(n int) Option {
	return func(o *options) { o.retry.MaxRetries = n }
}

// WithRetryPolicy replaces the retry policy.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(o *options) { o.retry = p }
}

// WithMaxMessageBytes sets the largest message sent or received (default 64 MiB).
func WithMaxMessageBytes(n int) Option { return func(o *options) { o.maxMsg = n } }

// WithDialOptions passes extra options to grpc.DialContext.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// WithoutBlock makes Dial return at once instead of waiting until the connection is up
// (the first call then waits for it).
func WithoutBlock() Option { return func(o *options) { o.noBlock = true } }

// Stubs are the generated gRPC clients of every agentdb.v1 service, sharing the
// Client's connection, credentials and retries.
type Stubs struct {
	Collections     pb.CollectionsClient
	Items           pb.ItemsClient
	Models          pb.ModelsClient
	Server          pb.ServerClient
	Security        pb.SecurityClient
	Cluster         pb.ClusterClient
	Agents          pb.AgentsClient
	Events          pb.EventsClient
	Queues          pb.QueuesClient
	StandingQueries pb.StandingQueriesClient
	Workflows       pb.WorkflowsClient
}

// Client is a connection to an AgentDB server. It is safe for concurrent use; Close it
// when done.
type Client struct {
	conn  *grpc.ClientConn
	stubs Stubs
	opts  options
	rmu   sync.Mutex
	rng   *rand.Rand
}

// Dial connects to the server at addr ("host:port", "http://host:port" or
// "https://host:port") and waits until the connection is up or ctx is done.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	o := options{retry: DefaultRetryPolicy, maxMsg: DefaultMaxMessageBytes}
	for _, f := range opts {
		f(&o)
	}
	target := addr
	switch {
	case strings.HasPrefix(addr, "https://"):
		target = strings.TrimPrefix(addr, "https://")
		if o.tlsConfig == nil {
			o.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	case strings.HasPrefix(addr, "http://"):
		target = strings.TrimPrefix(addr, "http://")
	}
	target = strings.TrimSuffix(target, "/")
	c := &Client{opts: o, rng: newRand()}
	dopts := []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(c.unaryInterceptor),
		grpc.WithChainStreamInterceptor(c.streamInterceptor),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.maxMsg), grpc.MaxCallSendMsgSize(o.maxMsg)),
		grpc.WithUserAgent("agentdb-go/" + Version),
	}
	if o.tlsConfig != nil {
		dopts = append(dopts, grpc.WithTransportCredentials(credentials.NewTLS(o.tlsConfig)))
	} else {
		dopts = append(dopts, grpc.WithInsecure())
	}
	if !o.noBlock {
		dopts = append(dopts, grpc.WithBlock(), grpc.WithReturnConnectionError())
	}
	dopts = append(dopts, o.dialOptions...)
	conn, err := grpc.DialContext(ctx, target, dopts...)
	if err != nil {
		return nil, &Error{Code: codes.Unavailable, Message: fmt.Sprintf("cannot connect to %s: %v", addr, err)}
	}
	c.conn = conn
	c.stubs = Stubs{
		Collections:     pb.NewCollectionsClient(conn),
		Items:           pb.NewItemsClient(conn),
		Models:          pb.NewModelsClient(conn),
		Server:          pb.NewServerClient(conn),
		Security:        pb.NewSecurityClient(conn),
		Cluster:         pb.NewClusterClient(conn),
		Agents:          pb.NewAgentsClient(conn),
		Events:          pb.NewEventsClient(conn),
		Queues:          pb.NewQueuesClient(conn),
		StandingQueries: pb.NewStandingQueriesClient(conn),
		Workflows:       pb.NewWorkflowsClient(conn),
	}
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying gRPC connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Stubs are the generated clients of every service, for calls this package does not
// wrap. Their errors are *Error too, and unary calls are retried by the same policy.
func (c *Client) Stubs() Stubs { return c.stubs }

func (c *Client) authorize(ctx context.Context) (context.Context, error) {
	if c.opts.token == nil {
		return ctx, nil
	}
	tok, err := c.opts.token(ctx)
	if err != nil {
		return ctx, &Error{Code: codes.Unauthenticated, Message: "token source: " + err.Error()}
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), nil
}

// readMethods are the calls that change nothing; they are retried on UNAVAILABLE too.
var readMethods = map[string]bool{
	"/agentdb.v1.Collections/List":     true,
	"/agentdb.v1.Collections/Describe": true,
	"/agentdb.v1.Items/Get":            true,
	"/agentdb.v1.Items/Count":          true,
	"/agentdb.v1.Items/Search":         true,
	"/agentdb.v1.Items/SearchBatch":    true,
	"/agentdb.v1.Items/Embed":          true,
	"/agentdb.v1.Items/Scroll":         true,
	"/agentdb.v1.Models/List":          true,
	"/agentdb.v1.Server/Status":        true,
	"/agentdb.v1.Server/Alerts":        true,
	"/agentdb.v1.Security/ListKeys":    true,
	"/agentdb.v1.Security/WhoAmI":      true,
	"/agentdb.v1.Cluster/Status":       true,
	"/agentdb.v1.Agents/List":          true,
	"/agentdb.v1.Agents/Get":           true,
	"/agentdb.v1.Events/Topics":        true,
	"/agentdb.v1.Queues/Stats":         true,
	"/agentdb.v1.StandingQueries/List": true,
	"/agentdb.v1.Workflows/List":       true,
	"/agentdb.v1.Workflows/Get":        true,
	"/agentdb.v1.Workflows/GetRun":     true,
	"/agentdb.v1.Workflows/ListRuns":   true,
	"/grpc.health.v1.Health/Check":     true,
}

// retryable: may a call that failed with err (and the server's hint) be tried again?
func retryable(err error, hint time.Duration, read bool) bool {
	code, msg := ErrorCode(err), ""
	if e, ok := err.(interface{ Error() string }); ok {
		msg = e.Error()
	}
	switch code {
	case codes.ResourceExhausted:
		// Refused before running: a rate quota (with a hint) or admission control.
		return hint > 0 || strings.Contains(msg, "overloaded")
	case codes.Unavailable:
		return read || hint > 0
	}
	return false
}

func newRand() *rand.Rand { return rand.New(rand.NewSource(time.Now().UnixNano())) }

// backoff is the wait before retry number n (1-based).
func (c *Client) backoff(n int, hint time.Duration) time.Duration {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if hint > 0 {
		// The server's hint, plus a little jitter so that clients refused together do
		// not come back together.
		j := hint / 5
		if j > 250*time.Millisecond {
			j = 250 * time.Millisecond
		}
		return hint + time.Duration(c.rng.Int63n(int64(j)+1)) + time.Millisecond
	}
	p := c.opts.retry
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	if p.MaxBackoff > 0 && d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(c.rng.Int63n(int64(d/2)+1))
}

// wait sleeps before retry n, or reports false when ctx ends (or its deadline falls)
// first.
func (c *Client) wait(ctx context.Context, n int, hint time.Duration) bool {
	d := c.backoff(n, hint)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *Client) unaryInterceptor(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, err := c.authorize(ctx)
	if err != nil {
		return err
	}
	read := readMethods[method]
	for attempt := 1; ; attempt++ {
		var header, trailer metadata.MD
		err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&header), grpc.Trailer(&trailer))...)
		if err == nil {
			return nil
		}
		hint := retryAfter(trailer, header)
		if attempt > c.opts.retry.MaxRetries || !retryable(err, hint, read) || !c.wait(ctx, attempt, hint) {
			return toError(err, method, hint, attempt)
		}
	}
}

func (c *Client) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := c.authorize(ctx)
	if err != nil {
		return nil, err
	}
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, toError(err, method, 0, 1)
	}
	return &errStream{ClientStream: s, method: method}, nil
}

// errStream turns the errors of a stream into *Error, with the server's retry hint.
type errStream struct {
	grpc.ClientStream
	method string
}

func (s *errStream) RecvMsg(m interface{}) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil || err == io.EOF {
		return err
	}
	h, _ := s.ClientStream.Header()
	return toError(err, s.method, retryAfter(s.ClientStream.Trailer(), h), 1)
}

func (s *errStream) SendMsg(m interface{}) error {
	err := s.ClientStream.SendMsg(m)
	if err == nil || err == io.EOF {
		return err
	}
	return toError(err, s.method, 0, 1)
}
