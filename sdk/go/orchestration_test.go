package agentdb_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	agentdb "github.com/agentdb/agentdb/sdk/go"
)

func TestAgentsAndStandingQueries(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	c := admin(t)
	card := agentdb.AgentCard{Name: "go-sdk-agent", Description: "answers questions", Version: "1.0",
		Skills: []agentdb.AgentSkill{{ID: "qa", Name: "Q&A", Tags: []string{"search"}}}, Capabilities: []string{"streaming"}}
	a, created, err := c.RegisterAgent(ctx, card, &agentdb.AgentOptions{HeartbeatTimeout: 30 * time.Second, NoMemory: true})
	must(t, err)
	if !created || a.Card.Name != card.Name || a.State != "registered" || a.HeartbeatTimeout != 30*time.Second ||
		len(a.Card.Skills) != 1 || a.Card.Skills[0].Tags[0] != "search" || a.MemoryCollection != "" || a.Registered.IsZero() {
		t.Fatalf("registered: %+v created=%v", a, created)
	}
	card.Version = "1.1"
	a, created, err = c.RegisterAgent(ctx, card, &agentdb.AgentOptions{NoMemory: true})
	must(t, err)
	if created || a.Card.Version != "1.1" {
		t.Fatalf("re-register: %+v created=%v", a, created)
	}
	a, err = c.Heartbeat(ctx, card.Name)
	must(t, err)
	if !a.Healthy || a.LastHeartbeat.IsZero() || a.State != "active" {
		t.Fatalf("heartbeat: %+v", a)
	}
	a, err = c.SetAgentState(ctx, card.Name, "suspended", "test")
	must(t, err)
	if a.State != "suspended" {
		t.Fatalf("set state: %+v", a)
	}
	list, err := c.ListAgents(ctx, "suspended")
	must(t, err)
	if len(list) != 1 || list[0].Card.Name != card.Name {
		t.Fatalf("list suspended: %+v", list)
	}
	_, err = c.SetAgentState(ctx, card.Name, "active", "back")
	must(t, err)
	if _, err := c.GetAgent(ctx, "nobody"); !agentdb.IsNotFound(err) {
		t.Fatalf("get missing agent: %v", err)
	}
	// A vector standing query: an upsert close to it is a standing_query.match event.
	_, err = c.CreateCollection(ctx, "go_watch", agentdb.CollectionConfig{Spaces: []agentdb.Space{{Dim: 2, Index: "Flat"}}})
	must(t, err)
	q, err := c.CreateStandingQuery(ctx, agentdb.StandingQuerySpec{Agent: card.Name, Name: "near-x", Collection: "go_watch", Vector: []float32{1, 0}, Threshold: 0.9})
	must(t, err)
	if q.ID != card.Name+".near-x" || q.Metric != "cosine" || q.Dim != 2 {
		t.Fatalf("standing query: %+v", q)
	}
	topics, err := c.Topics(ctx)
	must(t, err)
	from := topics.NextOffset
	sub, err := c.Subscribe(ctx, agentdb.SubscribeOptions{Topics: []string{"standing_query"}, FromOffset: &from})
	must(t, err)
	defer sub.Close()
	_, err = c.Upsert(ctx, "go_watch", []agentdb.Item{{ID: "far", Vectors: map[string][]float32{"": {0, 1}}}, {ID: "near", Vectors: map[string][]float32{"": {1, 0.05}}}})
	must(t, err)
	select {
	case ev, ok := <-sub.C:
		if !ok {
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		if ev.Topic != "standing_query" || ev.Kind != "standing_query.match" || ev.Subject != q.ID || !strings.Contains(string(ev.Data), `"near"`) || strings.Contains(string(ev.Data), `"far"`) {
			t.Fatalf("match event: %+v data %s", ev, ev.Data)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no standing_query.match event in 20 s")
	}
	qs, err := c.ListStandingQueries(ctx, card.Name)
	must(t, err)
	if len(qs) != 1 {
		t.Fatalf("list standing queries: %+v", qs)
	}
	must(t, c.DeleteStandingQuery(ctx, q.ID))
	a, err = c.SetAgentState(ctx, card.Name, "retired", "done")
	must(t, err)
	if a.State != "retired" {
		t.Fatalf("retire: %+v", a)
	}
	if _, err := c.SetAgentState(ctx, card.Name, "active", ""); !agentdb.IsFailedPrecondition(err) {
		t.Fatalf("retired -> active: want FAILED_PRECONDITION, got %v", err)
	}
}

func TestQueuesEventsAndWorkflows(t *testing.T) {
	ctx := ctxT(t, 90*time.Second)
	c := admin(t)

	// Queues.
	max := uint32(2)
	qs, created, err := c.CreateQueue(ctx, "go-jobs", &agentdb.QueueOptions{MaxAttempts: &max, VisibilityTimeout: 200 * time.Millisecond})
	must(t, err)
	if !created || qs.MaxAttempts != 2 || qs.VisibilityTimeout != 200*time.Millisecond || qs.DeadLetterQueue == "" {
		t.Fatalf("create queue: %+v", qs)
	}
	id, err := c.Send(ctx, "go-jobs", []byte("job 1"), map[string]string{"kind": "test"})
	must(t, err)
	msgs, err := c.Receive(ctx, "go-jobs", agentdb.ReceiveOptions{Max: 10, Wait: time.Second})
	must(t, err)
	if len(msgs) != 1 || msgs[0].ID != id || string(msgs[0].Body) != "job 1" || msgs[0].Attributes["kind"] != "test" || msgs[0].Attempt != 1 {
		t.Fatalf("receive: %+v", msgs)
	}
	// Not acked: it comes back after the visibility timeout, as attempt 2.
	again, err := c.Receive(ctx, "go-jobs", agentdb.ReceiveOptions{Wait: 3 * time.Second})
	must(t, err)
	if len(again) != 1 || again[0].ID != id || again[0].Attempt != 2 {
		t.Fatalf("redelivery: %+v", again)
	}
	must(t, c.Ack(ctx, "go-jobs", again[0].Receipt))
	stats, err := c.QueueStats(ctx, "go-jobs")
	must(t, err)
	if len(stats) != 1 || stats[0].Messages != 0 {
		t.Fatalf("stats after ack: %+v", stats[0])
	}

	// Events: publish and read back in order.
	topics, err := c.Topics(ctx)
	must(t, err)
	from := topics.NextOffset
	sub, err := c.Subscribe(ctx, agentdb.SubscribeOptions{Topics: []string{"workflow"}, FromOffset: &from})
	must(t, err)
	defer sub.Close()
	offs, err := c.Publish(ctx, agentdb.PublishEvent{Topic: "workflow", Kind: "go.test", Subject: "s1", Data: map[string]int{"n": 1}},
		agentdb.PublishEvent{Topic: "workflow", Kind: "go.test", Subject: "s2"})
	must(t, err)
	if len(offs) != 2 || offs[1] != offs[0]+1 || offs[0] < from {
		t.Fatalf("publish offsets: %v (from %d)", offs, from)
	}
	next := func() agentdb.Event {
		t.Helper()
		select {
		case ev, ok := <-sub.C:
			if !ok {
				t.Fatalf("subscription ended: %v", sub.Err())
			}
			return ev
		case <-time.After(20 * time.Second):
			t.Fatal("no event in 20 s")
		}
		return agentdb.Event{}
	}
	e1, e2 := next(), next()
	var data map[string]int
	if e1.Offset != offs[0] || e1.Subject != "s1" || json.Unmarshal(e1.Data, &data) != nil || data["n"] != 1 || e2.Offset != offs[1] || e2.Subject != "s2" {
		t.Fatalf("events: %+v %+v", e1, e2)
	}
	if _, err := c.Publish(ctx, agentdb.PublishEvent{Topic: "ingestion", Kind: "x"}); !agentdb.IsInvalidArgument(err) && !agentdb.IsPermissionDenied(err) {
		t.Fatalf("publishing to a server topic: %v", err)
	}

	// Workflows: a run that notifies a queue; its events arrive on the workflow topic.
	yaml := `name: go-digest
description: notify a queue
inputs: { who: "world" }
steps:
  - id: pause
    sleep: 10ms
  - id: report
    needs: [pause]
    notify: { queue: go-reports, message: "hello {{ inputs.who }}" }
`
	w, changed, err := c.ApplyWorkflow(ctx, yaml)
	must(t, err)
	if !changed || w.Name != "go-digest" || w.Version != 1 || len(w.Steps) != 2 {
		t.Fatalf("apply: %+v", w)
	}
	if _, changed, err = c.ApplyWorkflow(ctx, yaml); err != nil || changed {
		t.Fatalf("apply again: changed=%v err=%v", changed, err)
	}
	if _, _, err := c.ApplyWorkflow(ctx, "name: bad\nsteps:\n  - id: a\n    needs: [b]\n    sleep: 1s\n"); !agentdb.IsInvalidArgument(err) {
		t.Fatalf("invalid workflow: %v", err)
	}
	_, _, err = c.CreateQueue(ctx, "go-reports", nil)
	must(t, err)
	run, err := c.RunWorkflow(ctx, "go-digest", &agentdb.RunOptions{Inputs: map[string]interface{}{"who": "gophers"}})
	must(t, err)
	if run.ID == "" || run.Workflow != "go-digest" {
		t.Fatalf("run: %+v", run)
	}
	run, err = c.WaitRun(ctx, run.ID, 100*time.Millisecond)
	must(t, err)
	if run.State != "succeeded" || run.Step("report") == nil || run.Step("report").State != "succeeded" || len(run.Step("report").Output) == 0 {
		t.Fatalf("run finished: %+v", run)
	}
	got, err := c.Receive(ctx, "go-reports", agentdb.ReceiveOptions{Wait: 5 * time.Second})
	must(t, err)
	if len(got) != 1 || !strings.Contains(string(got[0].Body), "hello gophers") {
		t.Fatalf("notify message: %+v", got)
	}
	sawRun := false
	for !sawRun {
		ev := next()
		sawRun = strings.Contains(ev.Subject, run.ID) || strings.Contains(string(ev.Data), run.ID)
	}
	runs, err := c.ListRuns(ctx, "go-digest", "succeeded", 10)
	must(t, err)
	if len(runs) != 1 || runs[0].ID != run.ID {
		t.Fatalf("list runs: %+v", runs)
	}
	ws, err := c.ListWorkflows(ctx)
	must(t, err)
	if len(ws) != 1 || ws[0].Name != "go-digest" {
		t.Fatalf("list workflows: %+v", ws)
	}
	must(t, c.DeleteWorkflow(ctx, "go-digest"))
	if _, err := c.GetWorkflow(ctx, "go-digest", 0); !agentdb.IsNotFound(err) {
		t.Fatalf("deleted workflow: %v", err)
	}
}
