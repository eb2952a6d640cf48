package agentdb

import (
	"context"
	"encoding/json"
	"time"

	pb "github.com/agentdb/agentdb/sdk/go/agentdbpb"
)

// Workflow is a stored version of a workflow definition (YAML; docs/WORKFLOWS.md).
type Workflow struct {
	Name        string
	Version     uint32
	Description string
	YAML        string
	SHA256      string
	Applied     time.Time
	AppliedBy   string
	Triggers    []string
	Steps       []string
	Versions    uint32 // versions stored for this name
}

// WorkflowStep is one step of a run.
type WorkflowStep struct {
	ID            string
	Kind          string // search, ingest, embed, filter, call_agent, wait_event, notify, ask, sleep
	State         string // pending, running, retrying, succeeded, failed, skipped, canceled
	Attempts      uint32
	Error         string
	AttemptErrors []string
	Output        json.RawMessage
	Started       time.Time
	Finished      time.Time
	NextAttempt   time.Time
}

// WorkflowRun is one run of a workflow.
type WorkflowRun struct {
	ID        string
	Workflow  string
	Version   uint32
	State     string // queued, running, succeeded, failed or canceled
	Agent     string
	Priority  int32
	Inputs    json.RawMessage
	Trigger   json.RawMessage
	Principal string
	Steps     []WorkflowStep
	Error     string
	Created   time.Time
	Started   time.Time
	Finished  time.Time
}

// Done reports whether the run has ended (succeeded, failed or canceled).
func (r *WorkflowRun) Done() bool {
	return r.State == "succeeded" || r.State == "failed" || r.State == "canceled"
}

// Step returns the step with this id, or nil.
func (r *WorkflowRun) Step(id string) *WorkflowStep {
	for i := range r.Steps {
		if r.Steps[i].ID == id {
			return &r.Steps[i]
		}
	}
	return nil
}

// RunOptions tune RunWorkflow; the zero value runs the latest version with its inputs.
type RunOptions struct {
	Version  uint32                 // 0 = the latest
	Inputs   map[string]interface{} // override the definition's inputs
	Agent    string                 // fair-share owner
	Priority *int32
}

func rawJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func workflowFromPB(w *pb.WorkflowInfo) *Workflow {
	if w == nil {
		return nil
	}
	return &Workflow{Name: w.Name, Version: w.Version, Description: w.Description, YAML: w.Yaml, SHA256: w.Sha256, Applied: unixMs(w.AppliedUnixMs), AppliedBy: w.AppliedBy, Triggers: w.Triggers, Steps: w.Steps, Versions: w.Versions}
}

func runFromPB(r *pb.WorkflowRun) *WorkflowRun {
	if r == nil {
		return nil
	}
	out := &WorkflowRun{ID: r.Id, Workflow: r.Workflow, Version: r.Version, State: r.State, Agent: r.Agent, Priority: r.Priority, Inputs: rawJSON(r.InputsJson), Trigger: rawJSON(r.TriggerJson), Principal: r.Principal, Error: r.Error, Created: unixMs(r.CreatedUnixMs), Started: unixMs(r.StartedUnixMs), Finished: unixMs(r.FinishedUnixMs)}
	for _, s := range r.Steps {
		out.Steps = append(out.Steps, WorkflowStep{ID: s.Id, Kind: s.Kind, State: s.State, Attempts: s.Attempts, Error: s.Error, AttemptErrors: s.AttemptErrors, Output: rawJSON(s.OutputJson), Started: unixMs(s.StartedUnixMs), Finished: unixMs(s.FinishedUnixMs), NextAttempt: unixMs(s.NextAttemptUnixMs)})
	}
	return out
}

// ApplyWorkflow validates and stores a definition; changed is false when the YAML
// equals the latest version's.
func (c *Client) ApplyWorkflow(ctx context.Context, yaml string) (w *Workflow, changed bool, err error) {
	r, err := c.stubs.Workflows.Apply(ctx, &pb.ApplyWorkflowRequest{Yaml: yaml})
	if err != nil {
		return nil, false, err
	}
	return workflowFromPB(r.Workflow), r.Changed, nil
}

// ListWorkflows lists the latest version of every workflow.
func (c *Client) ListWorkflows(ctx context.Context) ([]*Workflow, error) {
	r, err := c.stubs.Workflows.List(ctx, &pb.ListWorkflowsRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]*Workflow, 0, len(r.Workflows))
	for _, w := range r.Workflows {
		out = append(out, workflowFromPB(w))
	}
	return out, nil
}

// GetWorkflow returns one version of a workflow (0 = the latest).
func (c *Client) GetWorkflow(ctx context.Context, name string, version uint32) (*Workflow, error) {
	r, err := c.stubs.Workflows.Get(ctx, &pb.GetWorkflowRequest{Name: name, Version: version})
	if err != nil {
		return nil, err
	}
	return workflowFromPB(r.Workflow), nil
}

// DeleteWorkflow deletes a workflow and its versions.
func (c *Client) DeleteWorkflow(ctx context.Context, name string) error {
	_, err := c.stubs.Workflows.Delete(ctx, &pb.DeleteWorkflowRequest{Name: name})
	return err
}

// RunWorkflow starts a run and returns it at once (queued or running); WaitRun follows
// it to the end.
func (c *Client) RunWorkflow(ctx context.Context, name string, opts *RunOptions) (*WorkflowRun, error) {
	req := &pb.RunWorkflowRequest{Name: name}
	if opts != nil {
		req.Version, req.Agent, req.Priority = opts.Version, opts.Agent, opts.Priority
		if opts.Inputs != nil {
			b, err := json.Marshal(opts.Inputs)
			if err != nil {
				return nil, err
			}
			req.InputsJson = string(b)
		}
	}
	r, err := c.stubs.Workflows.Run(ctx, req)
	if err != nil {
		return nil, err
	}
	return runFromPB(r.Run), nil
}

// GetRun returns a run with its steps.
func (c *Client) GetRun(ctx context.Context, id string) (*WorkflowRun, error) {
	r, err := c.stubs.Workflows.GetRun(ctx, &pb.GetWorkflowRunRequest{Id: id})
	if err != nil {
		return nil, err
	}
	return runFromPB(r.Run), nil
}

// WaitRun polls a run (every poll; 200 ms when 0) until it has ended or ctx is done.
func (c *Client) WaitRun(ctx context.Context, id string, poll time.Duration) (*WorkflowRun, error) {
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	for {
		run, err := c.GetRun(ctx, id)
		if err != nil || run.Done() {
			return run, err
		}
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return run, toError(ctx.Err(), "/agentdb.v1.Workflows/GetRun", 0, 1)
		}
	}
}

// ListRuns lists runs, most recent first ("" workflow or state = any; limit 0 = 100).
func (c *Client) ListRuns(ctx context.Context, workflow, state string, limit uint32) ([]*WorkflowRun, error) {
	r, err := c.stubs.Workflows.ListRuns(ctx, &pb.ListWorkflowRunsRequest{Workflow: workflow, State: state, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]*WorkflowRun, 0, len(r.Runs))
	for _, x := range r.Runs {
		out = append(out, runFromPB(x))
	}
	return out, nil
}

// CancelRun cancels a queued or running run.
func (c *Client) CancelRun(ctx context.Context, id string) (*WorkflowRun, error) {
	r, err := c.stubs.Workflows.Cancel(ctx, &pb.CancelWorkflowRunRequest{Id: id})
	if err != nil {
		return nil, err
	}
	return runFromPB(r.Run), nil
}
