package processor

import (
	"context"
	"testing"
	"time"
)

// held tries to acquire without blocking for long: it reports whether a
// slot came at once, and the release (nil if none came).
func held(t *testing.T, f *fairShare, app, channel string) (func(), bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rel, err := f.acquire(ctx, app, channel)
	return rel, err == nil
}

// queued starts an acquire in the background; the channel gets its
// release once a slot is granted.
func queued(f *fairShare, app, channel string) <-chan func() {
	got := make(chan func(), 1)
	go func() {
		rel, err := f.acquire(context.Background(), app, channel)
		if err == nil {
			got <- rel
		}
	}()
	time.Sleep(10 * time.Millisecond) // in the queue, in this order
	return got
}

func granted(ch <-chan func()) (func(), bool) {
	select {
	case rel := <-ch:
		return rel, true
	case <-time.After(200 * time.Millisecond):
		return nil, false
	}
}

// TestFairShareNewcomerTakesSpare: app A holds both slots and has more
// waiting; app B's first step gets a spare slot at once, its second waits
// (B is at its share), and a freed slot goes to the app holding fewer.
func TestFairShareNewcomerTakesSpare(t *testing.T) {
	f := newFairShare(2, 2, nil)
	relA1, ok1 := held(t, f, "a", "x")
	_, ok2 := held(t, f, "a", "x")
	if !ok1 || !ok2 {
		t.Fatal("A did not get the two free slots")
	}
	a3 := queued(f, "a", "x")
	relB, ok := held(t, f, "b", "y")
	if !ok {
		t.Fatal("B waited behind A: want a spare slot at once")
	}
	b2 := queued(f, "b", "y")
	if _, ok := granted(a3); ok {
		t.Fatal("A got a third slot while holding two")
	}
	relB()
	if rel, ok := granted(b2); !ok {
		t.Fatal("B's second step did not take the spare B gave back")
	} else {
		rel()
	}
	relA1()
	if _, ok := granted(a3); !ok {
		t.Fatal("A's waiting step did not get the slot A freed")
	}
}

// TestFairShareWeights: with weights 2 and 1 and both apps always
// waiting, slots are held 2:1.
func TestFairShareWeights(t *testing.T) {
	f := newFairShare(3, 0, func(app string) int { return map[string]int{"a": 2, "b": 1}[app] })
	var got []string
	var as, bs []<-chan func()
	for range 4 {
		as = append(as, queued(f, "a", "x"))
		bs = append(bs, queued(f, "b", "y"))
	}
	for _, ch := range as {
		if _, ok := granted(ch); ok {
			got = append(got, "a")
		}
	}
	for _, ch := range bs {
		if _, ok := granted(ch); ok {
			got = append(got, "b")
		}
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "a" || got[2] != "b" {
		t.Errorf("3 slots went to %v, want a a b", got)
	}
}

// TestFairShareSessions: within an app, a step of a session holding no
// slot goes before more steps of a session holding one.
func TestFairShareSessions(t *testing.T) {
	f := newFairShare(2, 0, nil)
	rel, _ := held(t, f, "a", "busy")
	_, _ = held(t, f, "a", "busy")
	more := queued(f, "a", "busy")
	other := queued(f, "a", "quiet")
	rel()
	if _, ok := granted(other); !ok {
		t.Fatal("the quiet session's step waited behind the busy session's second")
	}
	if _, ok := granted(more); ok {
		t.Fatal("three slots out of two")
	}
}

// TestFairShareCancel: a step whose context ends while waiting leaves the
// queue and takes nothing.
func TestFairShareCancel(t *testing.T) {
	f := newFairShare(1, 0, nil)
	rel, _ := held(t, f, "a", "x")
	if _, ok := held(t, f, "b", "y"); ok {
		t.Fatal("a second slot out of one")
	}
	rel()
	if rel, ok := held(t, f, "c", "z"); !ok {
		t.Fatal("the slot was lost to a canceled waiter")
	} else {
		rel()
	}
	if len(f.apps) != 0 || f.used != 0 {
		t.Errorf("state left behind: %d apps, %d used", len(f.apps), f.used)
	}
}
