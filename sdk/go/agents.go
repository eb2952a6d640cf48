package agentdb

import (
	"context"
	"time"

	pb "github.com/agentdb/agentdb/sdk/go/agentdbpb"
)

// AgentSkill is one skill on an agent card.
type AgentSkill struct {
	ID, Name, Description string
	Tags                  []string
}

// AgentCard describes an agent.
type AgentCard struct {
	Name         string // letters, digits, '_' and '-' (at most 100)
	Description  string
	Version      string
	Skills       []AgentSkill
	Capabilities []string
	Endpoint     string // where the agent can be reached (URL), informational
}

// Agent is a registered agent.
type Agent struct {
	Card             AgentCard
	State            string // registered, active, suspended or retired
	Healthy          bool
	Registered       time.Time
	Updated          time.Time
	LastHeartbeat    time.Time
	HeartbeatTimeout time.Duration
	MemoryCollection string // agent_<name>_memory, "" if none
}

// AgentOptions tune RegisterAgent; the zero value is fine.
type AgentOptions struct {
	HeartbeatTimeout time.Duration // 0 = the server's default
	MemorySpaces     []Space       // empty = the installed encoders' spaces
	NoMemory         bool          // no memory collection
}

func unixMs(ms uint64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms))
}

func agentFromPB(a *pb.AgentInfo) *Agent {
	if a == nil {
		return nil
	}
	out := &Agent{
		State: a.State, Healthy: a.Healthy, Registered: unixMs(a.RegisteredUnixMs), Updated: unixMs(a.UpdatedUnixMs),
		LastHeartbeat: unixMs(a.LastHeartbeatUnixMs), HeartbeatTimeout: time.Duration(a.HeartbeatTimeoutMs) * time.Millisecond,
		MemoryCollection: a.MemoryCollection,
	}
	if c := a.Card; c != nil {
		out.Card = AgentCard{Name: c.Name, Description: c.Description, Version: c.Version, Capabilities: c.Capabilities, Endpoint: c.Endpoint}
		for _, s := range c.Skills {
			out.Card.Skills = append(out.Card.Skills, AgentSkill{ID: s.Id, Name: s.Name, Description: s.Description, Tags: s.Tags})
		}
	}
	return out
}

// RegisterAgent registers an agent, or updates the card of an existing one (created
// is then false).
func (c *Client) RegisterAgent(ctx context.Context, card AgentCard, opts *AgentOptions) (agent *Agent, created bool, err error) {
	req := &pb.RegisterAgentRequest{Card: &pb.AgentCard{Name: card.Name, Description: card.Description, Version: card.Version, Capabilities: card.Capabilities, Endpoint: card.Endpoint}}
	for _, s := range card.Skills {
		req.Card.Skills = append(req.Card.Skills, &pb.AgentSkill{Id: s.ID, Name: s.Name, Description: s.Description, Tags: s.Tags})
	}
	if opts != nil {
		req.HeartbeatTimeoutMs = uint64(opts.HeartbeatTimeout / time.Millisecond)
		req.NoMemory = opts.NoMemory
		for _, s := range opts.MemorySpaces {
			req.MemorySpaces = append(req.MemorySpaces, spaceToPB(s))
		}
	}
	r, err := c.stubs.Agents.Register(ctx, req)
	if err != nil {
		return nil, false, err
	}
	return agentFromPB(r.Agent), r.Created, nil
}

// ListAgents lists agents, only those in state when it is not "".
func (c *Client) ListAgents(ctx context.Context, state string) ([]*Agent, error) {
	r, err := c.stubs.Agents.List(ctx, &pb.ListAgentsRequest{State: state})
	if err != nil {
		return nil, err
	}
	out := make([]*Agent, 0, len(r.Agents))
	for _, a := range r.Agents {
		out = append(out, agentFromPB(a))
	}
	return out, nil
}

// GetAgent returns one agent (NOT_FOUND if there is none).
func (c *Client) GetAgent(ctx context.Context, name string) (*Agent, error) {
	r, err := c.stubs.Agents.Get(ctx, &pb.GetAgentRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return agentFromPB(r.Agent), nil
}

// SetAgentState moves an agent to active, suspended or retired (an illegal transition
// is FAILED_PRECONDITION).
func (c *Client) SetAgentState(ctx context.Context, name, state, reason string) (*Agent, error) {
	r, err := c.stubs.Agents.SetState(ctx, &pb.SetAgentStateRequest{Name: name, State: state, Reason: reason})
	if err != nil {
		return nil, err
	}
	return agentFromPB(r.Agent), nil
}

// Heartbeat records that an agent is alive.
func (c *Client) Heartbeat(ctx context.Context, name string) (*Agent, error) {
	r, err := c.stubs.Agents.Heartbeat(ctx, &pb.AgentHeartbeatRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return agentFromPB(r.Agent), nil
}

// StandingQuery is a query evaluated against every item written to a collection; each
// match is a `standing_query.match` event on the standing_query topic.
type StandingQuery struct {
	ID, Agent, Name, Collection, Space, Metric, Text, Filter string
	Threshold                                                float32
	Dim                                                      uint32
	Created                                                  time.Time
}

// StandingQuerySpec creates a standing query: by Text or by Vector.
type StandingQuerySpec struct {
	Agent, Name, Collection, Space string
	Text                           string
	Vector                         []float32
	Filter                         string
	Threshold                      float32 // lowest similarity (largest L2 distance) that matches
}

func standingFromPB(q *pb.StandingQuery) *StandingQuery {
	if q == nil {
		return nil
	}
	return &StandingQuery{ID: q.Id, Agent: q.Agent, Name: q.Name, Collection: q.Collection, Space: q.Space, Metric: q.Metric, Text: q.Text, Filter: q.Filter, Threshold: q.Threshold, Dim: q.Dim, Created: unixMs(q.CreatedUnixMs)}
}

// CreateStandingQuery creates a standing query for an agent.
func (c *Client) CreateStandingQuery(ctx context.Context, s StandingQuerySpec) (*StandingQuery, error) {
	req := &pb.CreateStandingQueryRequest{Agent: s.Agent, Name: s.Name, Collection: s.Collection, Space: s.Space, Filter: s.Filter, Threshold: s.Threshold}
	if s.Vector != nil {
		req.Query = &pb.CreateStandingQueryRequest_Vector{Vector: &pb.Vector{Values: s.Vector}}
	} else {
		req.Query = &pb.CreateStandingQueryRequest_Text{Text: s.Text}
	}
	r, err := c.stubs.StandingQueries.Create(ctx, req)
	if err != nil {
		return nil, err
	}
	return standingFromPB(r.Query), nil
}

// ListStandingQueries lists the standing queries of an agent ("" = every agent).
func (c *Client) ListStandingQueries(ctx context.Context, agent string) ([]*StandingQuery, error) {
	r, err := c.stubs.StandingQueries.List(ctx, &pb.ListStandingQueriesRequest{Agent: agent})
	if err != nil {
		return nil, err
	}
	out := make([]*StandingQuery, 0, len(r.Queries))
	for _, q := range r.Queries {
		out = append(out, standingFromPB(q))
	}
	return out, nil
}

// DeleteStandingQuery deletes a standing query by id (<agent>.<name>).
func (c *Client) DeleteStandingQuery(ctx context.Context, id string) error {
	_, err := c.stubs.StandingQueries.Delete(ctx, &pb.DeleteStandingQueryRequest{Id: id})
	return err
}
