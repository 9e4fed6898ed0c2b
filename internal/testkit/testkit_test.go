package testkit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	var n atomic.Int32
	WaitFor(t, 5*time.Second, "third poll", func() bool { return n.Add(1) == 3 })
	if got := n.Load(); got != 3 {
		t.Fatalf("polls: got %d, want 3", got)
	}
}

func TestGo(t *testing.T) {
	started := make(chan struct{})
	stop := Go(t, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	<-started
	if err := stop(); err != nil {
		t.Fatalf("stop: got %v, want nil (context.Canceled is no failure)", err)
	}
	boom := errors.New("boom")
	stop = Go(t, func(ctx context.Context) error { <-ctx.Done(); return boom })
	if err := stop(); !errors.Is(err, boom) {
		t.Fatalf("stop: got %v, want %v", err, boom)
	}
	if err := stop(); !errors.Is(err, boom) {
		t.Fatalf("second stop: got %v, want the same %v", err, boom)
	}
}
