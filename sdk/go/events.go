package agentdb

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"

	pb "github.com/agentdb/agentdb/sdk/go/agentdbpb"
)

// Event is one event of the server's bus, or — when Lagged is set — a notice that
// events were evicted before the subscriber read them.
type Event struct {
	Offset  uint64 // global, increasing, unique across topics
	Topic   string // ingestion, standing_query, agent_health, agent_lifecycle, workflow, alerts
	Kind    string
	Subject string
	Data    json.RawMessage
	Time    time.Time
	Lagged  *Lagged
}

// Lagged: delivery went on from FirstAvailableOffset instead of RequestedOffset.
type Lagged struct {
	RequestedOffset, FirstAvailableOffset uint64
}

// SubscribeOptions choose what Subscribe delivers.
type SubscribeOptions struct {
	Topics []string // empty = every topic
	// FromOffset delivers retained events from this offset on; nil = only new ones.
	FromOffset *uint64
	// Buffer is the channel's capacity (default 64).
	Buffer int
}

// Subscription is a live event stream. Read C until it is closed, then Err says why
// (nil after Close or when ctx ended).
type Subscription struct {
	C      <-chan Event
	cancel context.CancelFunc
	mu     sync.Mutex
	err    error
}

// Err is the error that ended the stream (nil when Close or the context ended it).
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription; C is closed soon after.
func (s *Subscription) Close() { s.cancel() }

// Subscribe streams events into a channel until ctx ends or Close is called.
func (c *Client) Subscribe(ctx context.Context, opts SubscribeOptions) (*Subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.stubs.Events.Subscribe(ctx, &pb.SubscribeRequest{Topics: opts.Topics, FromOffset: opts.FromOffset})
	if err != nil {
		cancel()
		return nil, err
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 64
	}
	ch := make(chan Event, opts.Buffer)
	sub := &Subscription{C: ch, cancel: cancel}
	go func() {
		defer close(ch)
		for {
			m, err := stream.Recv()
			if err != nil {
				if err != io.EOF && ctx.Err() == nil {
					sub.mu.Lock()
					sub.err = err
					sub.mu.Unlock()
				}
				return
			}
			var ev Event
			switch x := m.Msg.(type) {
			case *pb.SubscribeResponse_Event:
				e := x.Event
				ev = Event{Offset: e.Offset, Topic: e.Topic, Kind: e.Kind, Subject: e.Subject, Time: unixMs(e.UnixMs)}
				if e.DataJson != "" {
					ev.Data = json.RawMessage(e.DataJson)
				}
			case *pb.SubscribeResponse_Lagged:
				ev = Event{Lagged: &Lagged{RequestedOffset: x.Lagged.RequestedOffset, FirstAvailableOffset: x.Lagged.FirstAvailableOffset}}
			default:
				continue
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return sub, nil
}

// PublishEvent is an event a client publishes (to standing_query, workflow or alerts).
type PublishEvent struct {
	Topic, Kind, Subject string
	Data                 interface{} // marshalled to JSON; nil = none
}

// Publish publishes events and returns their offsets.
func (c *Client) Publish(ctx context.Context, events ...PublishEvent) ([]uint64, error) {
	req := &pb.PublishRequest{}
	for _, e := range events {
		pe := &pb.PublishEvent{Topic: e.Topic, Kind: e.Kind, Subject: e.Subject}
		if e.Data != nil {
			b, err := json.Marshal(e.Data)
			if err != nil {
				return nil, err
			}
			pe.DataJson = string(b)
		}
		req.Events = append(req.Events, pe)
	}
	r, err := c.stubs.Events.Publish(ctx, req)
	if err != nil {
		return nil, err
	}
	return r.Offsets, nil
}

// TopicInfo is one topic's retention.
type TopicInfo struct {
	Name                    string
	Retained                uint64
	FirstOffset, LastOffset uint64
	ClientPublishable       bool
}

// Topics lists the topics, the offset the next event will get, and the ring capacity.
type Topics struct {
	Topics       []TopicInfo
	NextOffset   uint64
	RingCapacity uint64
}

// Topics describes the event bus.
func (c *Client) Topics(ctx context.Context) (*Topics, error) {
	r, err := c.stubs.Events.Topics(ctx, &pb.TopicsRequest{})
	if err != nil {
		return nil, err
	}
	out := &Topics{NextOffset: r.NextOffset, RingCapacity: r.RingCapacity}
	for _, t := range r.Topics {
		out.Topics = append(out.Topics, TopicInfo{Name: t.Name, Retained: t.Retained, FirstOffset: t.FirstOffset, LastOffset: t.LastOffset, ClientPublishable: t.ClientPublishable})
	}
	return out, nil
}
