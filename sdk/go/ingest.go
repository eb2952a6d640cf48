package agentdb

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	pb "github.com/agentdb/agentdb/sdk/go/agentdbpb"
	"google.golang.org/grpc/codes"
)

// DefaultMaxFileBytes: larger files are reported as failed without being sent (the
// server's ingest limit is 32 MiB by default).
const DefaultMaxFileBytes = 32 << 20

// IngestResult is what became of one file.
type IngestResult struct {
	Source string // the path (or the source given to IngestBytes)
	// Status is "ingested", "skipped" (the same content is already there) or "failed".
	Status        string
	Error         string // why it failed
	Items         uint32 // items written (text chunks, image, transcript passages, ...)
	MediaType     string // detected, e.g. "text/markdown", "image/png"
	ContentSHA256 string
}

// IngestProgress is reported after every file.
type IngestProgress struct {
	Done, Total int
	Result      IngestResult
}

// IngestOptions tune Ingest; the zero value is fine.
type IngestOptions struct {
	// Concurrency is the number of files sent and not yet answered (default 4).
	Concurrency int
	// Progress is called after every file, from one goroutine at a time.
	Progress func(IngestProgress)
	// MaxFileBytes (default DefaultMaxFileBytes).
	MaxFileBytes int64
}

// IngestSummary is what an Ingest call did. Failed files do not make Ingest fail.
type IngestSummary struct {
	Files, Ingested, Skipped int
	Items                    uint64
	Failed                   []IngestResult
	Results                  []IngestResult // every file, in the order they finished
	Duration                 time.Duration
}

// walk lists the files under p like `agentdb ingest`: folders recursively in name
// order, hidden entries skipped.
func walk(p string, files *[]string, failed *[]IngestResult) {
	st, err := os.Stat(p)
	if err != nil {
		*failed = append(*failed, IngestResult{Source: p, Status: "failed", Error: err.Error()})
		return
	}
	if !st.IsDir() {
		if st.Mode().IsRegular() {
			*files = append(*files, p)
		}
		return
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		*failed = append(*failed, IngestResult{Source: p, Status: "failed", Error: err.Error()})
		return
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		walk(filepath.Join(p, n), files, failed)
	}
}

func ingestResultFromPB(r *pb.IngestResult) IngestResult {
	return IngestResult{Source: r.Source, Status: r.Status, Error: r.Error, Items: r.Items, MediaType: r.MediaType, ContentSHA256: r.ContentSha256}
}

// Ingest streams files and folders (recursively) to a collection over one call, with a
// bounded number of files in flight. The server detects each file's type from its
// bytes (text, Markdown, images, recordings, videos), chunks and embeds it; re-running
// skips what is already there. Files that fail are listed in the summary; the call
// itself fails only when the stream does (it is retried when the server refused it
// before anything was ingested).
func (c *Client) Ingest(ctx context.Context, collection string, paths []string, opts *IngestOptions) (*IngestSummary, error) {
	var o IngestOptions
	if opts != nil {
		o = *opts
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	start := time.Now()
	var files []string
	var local []IngestResult
	for _, p := range paths {
		walk(p, &files, &local)
	}
	var send []string
	for _, f := range files {
		if st, err := os.Stat(f); err != nil {
			local = append(local, IngestResult{Source: f, Status: "failed", Error: err.Error()})
		} else if st.Size() > o.MaxFileBytes {
			local = append(local, IngestResult{Source: f, Status: "failed", Error: fmt.Sprintf("file is %d bytes; the ingest limit is %d", st.Size(), o.MaxFileBytes)})
		} else {
			send = append(send, f)
		}
	}
	sum := &IngestSummary{Files: len(send) + len(local)}
	var mu sync.Mutex
	report := func(r IngestResult) {
		mu.Lock()
		defer mu.Unlock()
		sum.Results = append(sum.Results, r)
		switch r.Status {
		case "ingested":
			sum.Ingested++
			sum.Items += uint64(r.Items)
		case "skipped":
			sum.Skipped++
		default:
			sum.Failed = append(sum.Failed, r)
		}
		if o.Progress != nil {
			o.Progress(IngestProgress{Done: len(sum.Results), Total: sum.Files, Result: r})
		}
	}
	for _, r := range local {
		report(r)
	}
	for attempt := 1; ; attempt++ {
		answered, err := c.ingestOnce(ctx, collection, send, o.Concurrency, report)
		if err == nil {
			sum.Duration = time.Since(start)
			return sum, nil
		}
		e, _ := err.(*Error)
		hint := time.Duration(0)
		if e != nil {
			hint = e.RetryAfter
			e.Attempts = attempt
		}
		if answered > 0 || attempt > c.opts.retry.MaxRetries || !retryable(err, hint, false) || !c.wait(ctx, attempt, hint) {
			sum.Duration = time.Since(start)
			return sum, err
		}
	}
}

// ingestOnce runs one Ingest stream; it returns how many results the server sent.
func (c *Client) ingestOnce(ctx context.Context, collection string, files []string, inflight int, report func(IngestResult)) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.stubs.Items.Ingest(ctx)
	if err != nil {
		return 0, err
	}
	slots := make(chan struct{}, inflight)
	sendErr := make(chan error, 1)
	go func() {
		defer close(sendErr)
		for _, f := range files {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			content, err := os.ReadFile(f)
			if err != nil {
				<-slots
				report(IngestResult{Source: f, Status: "failed", Error: err.Error()})
				continue
			}
			if err := stream.Send(&pb.IngestRequest{Collection: collection, Source: f, Content: content}); err != nil {
				if err != io.EOF {
					sendErr <- err
				}
				return // the stream's error comes from Recv
			}
		}
		if err := stream.CloseSend(); err != nil {
			sendErr <- err
		}
	}()
	answered := 0
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			// The server ends the stream after the client's half-close, so the sender
			// has finished (or is about to).
			select {
			case e := <-sendErr:
				return answered, e
			case <-time.After(10 * time.Second):
				return answered, &Error{Code: codes.Unknown, Method: "/agentdb.v1.Items/Ingest", Message: "the server ended the ingest stream before every file was sent"}
			}
		}
		if err != nil {
			return answered, err
		}
		answered++
		select {
		case <-slots:
		default:
		}
		report(ingestResultFromPB(r))
	}
}

// IngestBytes ingests one file's content under a source name (a path or URI).
func (c *Client) IngestBytes(ctx context.Context, collection, source string, content []byte) (*IngestResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.stubs.Items.Ingest(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pb.IngestRequest{Collection: collection, Source: source, Content: content}); err != nil && err != io.EOF {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	r, err := stream.Recv()
	if err != nil {
		if err == io.EOF {
			return nil, &Error{Code: codes.Unknown, Message: "the server closed the ingest stream without a result", Method: "/agentdb.v1.Items/Ingest"}
		}
		return nil, err
	}
	res := ingestResultFromPB(r)
	return &res, nil
}
