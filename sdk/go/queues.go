package agentdb

import (
	"context"
	"time"

	pb "github.com/agentdb/agentdb/sdk/go/agentdbpb"
)

// QueueStats describe a durable message queue.
type QueueStats struct {
	Name              string
	MaxAttempts       uint32
	VisibilityTimeout time.Duration
	MaxMessages       uint64
	Messages          uint64
	Ready             uint64
	InFlight          uint64
	DeadLetterQueue   string
	OldestSent        time.Time
	Created           time.Time
}

// QueueOptions tune CreateQueue; zero values take the server's defaults.
type QueueOptions struct {
	// MaxAttempts: deliveries before a message moves to <name>.dlq (nil = server
	// default; 0 = never).
	MaxAttempts       *uint32
	VisibilityTimeout time.Duration
	MaxMessages       uint64
}

// Message is a received queue message; Ack it with its Receipt.
type Message struct {
	ID             string
	Body           []byte
	Attributes     map[string]string
	Attempt        uint32 // 1 on the first delivery
	Receipt        string
	Sent           time.Time
	InvisibleUntil time.Time
}

// ReceiveOptions tune Receive; the zero value takes one message without waiting.
type ReceiveOptions struct {
	Max               uint32        // 1 when 0; at most 100
	VisibilityTimeout time.Duration // 0 = the queue's
	Wait              time.Duration // long poll (at most 20 s)
}

func queueFromPB(q *pb.QueueStats) *QueueStats {
	if q == nil {
		return nil
	}
	return &QueueStats{
		Name: q.Name, MaxAttempts: q.MaxAttempts, VisibilityTimeout: time.Duration(q.VisibilityTimeoutMs) * time.Millisecond,
		MaxMessages: q.MaxMessages, Messages: q.Messages, Ready: q.Ready, InFlight: q.InFlight,
		DeadLetterQueue: q.DeadLetterQueue, OldestSent: unixMs(q.OldestSentUnixMs), Created: unixMs(q.CreatedUnixMs),
	}
}

// CreateQueue creates a queue (created is false when it existed already).
func (c *Client) CreateQueue(ctx context.Context, name string, opts *QueueOptions) (q *QueueStats, created bool, err error) {
	req := &pb.CreateQueueRequest{Name: name}
	if opts != nil {
		req.MaxAttempts = opts.MaxAttempts
		req.VisibilityTimeoutMs = uint64(opts.VisibilityTimeout / time.Millisecond)
		req.MaxMessages = opts.MaxMessages
	}
	r, err := c.stubs.Queues.Create(ctx, req)
	if err != nil {
		return nil, false, err
	}
	return queueFromPB(r.Queue), r.Created, nil
}

// Send sends a message and returns its id.
func (c *Client) Send(ctx context.Context, queue string, body []byte, attributes map[string]string) (string, error) {
	r, err := c.stubs.Queues.Send(ctx, &pb.SendMessageRequest{Queue: queue, Body: body, Attributes: attributes})
	if err != nil {
		return "", err
	}
	return r.Id, nil
}

// Receive takes up to opts.Max ready messages, invisible to others until acked or
// their visibility timeout passes.
func (c *Client) Receive(ctx context.Context, queue string, opts ReceiveOptions) ([]Message, error) {
	r, err := c.stubs.Queues.Receive(ctx, &pb.ReceiveMessagesRequest{
		Queue: queue, MaxMessages: opts.Max,
		VisibilityTimeoutMs: uint64(opts.VisibilityTimeout / time.Millisecond), WaitMs: uint64(opts.Wait / time.Millisecond),
	})
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(r.Messages))
	for _, m := range r.Messages {
		out = append(out, Message{ID: m.Id, Body: m.Body, Attributes: m.Attributes, Attempt: m.Attempt, Receipt: m.Receipt, Sent: unixMs(m.SentUnixMs), InvisibleUntil: unixMs(m.InvisibleUntilUnixMs)})
	}
	return out, nil
}

// Ack deletes a received message.
func (c *Client) Ack(ctx context.Context, queue, receipt string) error {
	_, err := c.stubs.Queues.Ack(ctx, &pb.AckMessageRequest{Queue: queue, Receipt: receipt})
	return err
}

// QueueStats describes one queue, or every queue when name is "".
func (c *Client) QueueStats(ctx context.Context, name string) ([]*QueueStats, error) {
	r, err := c.stubs.Queues.Stats(ctx, &pb.QueueStatsRequest{Name: name})
	if err != nil {
		return nil, err
	}
	out := make([]*QueueStats, 0, len(r.Queues))
	for _, q := range r.Queues {
		out = append(out, queueFromPB(q))
	}
	return out, nil
}
