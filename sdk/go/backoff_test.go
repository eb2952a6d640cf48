package agentdb

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestBackoffAndRetryRules(t *testing.T) {
	c := &Client{opts: options{retry: RetryPolicy{MaxRetries: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}}}
	c.rng = newRand()
	for n, max := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 6: time.Second} {
		for i := 0; i < 50; i++ {
			d := c.backoff(n, 0)
			if d < max/2 || d > max {
				t.Fatalf("retry %d: backoff %v outside [%v, %v]", n, d, max/2, max)
			}
		}
	}
	for i := 0; i < 50; i++ {
		if d := c.backoff(1, 700*time.Millisecond); d < 700*time.Millisecond || d > 952*time.Millisecond {
			t.Fatalf("a 700 ms hint gave %v", d)
		}
	}
	rate := status.Error(codes.ResourceExhausted, "rate limit of 4 requests/s exceeded for x; retry after 250 ms")
	quota := status.Error(codes.ResourceExhausted, "storage quota of 1000 bytes exceeded")
	busy := status.Error(codes.ResourceExhausted, "server overloaded: more than 10 requests waiting; retry with backoff")
	down := status.Error(codes.Unavailable, "connection refused")
	cases := []struct {
		err  error
		hint time.Duration
		read bool
		want bool
	}{
		{rate, 250 * time.Millisecond, false, true},
		{rate, 250 * time.Millisecond, true, true},
		{quota, 0, false, false},
		{quota, 0, true, false},
		{busy, 0, false, true},
		{down, 0, true, true},
		{down, 0, false, false},
		{status.Error(codes.NotFound, "x"), 0, true, false},
		{status.Error(codes.Internal, "x"), 0, true, false},
	}
	for _, tc := range cases {
		if got := retryable(tc.err, tc.hint, tc.read); got != tc.want {
			t.Errorf("retryable(%v, %v, read=%v) = %v", tc.err, tc.hint, tc.read, got)
		}
	}
	e := toError(rate, "/agentdb.v1.Items/Search", 250*time.Millisecond, 3)
	if !errors.Is(e, ErrResourceExhausted) || errors.Is(e, ErrNotFound) || ErrorCode(e) != codes.ResourceExhausted || status.Code(e) != codes.ResourceExhausted {
		t.Fatalf("toError: %v", e)
	}
	if ErrorCode(nil) != codes.OK || ErrorCode(errors.New("x")) != codes.Unknown {
		t.Fatal("ErrorCode of nil / a plain error")
	}
}
