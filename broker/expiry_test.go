package broker

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestExpiriesOrder: whatever the adds, moves and removals, due hands out
// exactly the connections whose expiry has passed, earliest first, and
// next tells how long until the earliest.
func TestExpiriesOrder(t *testing.T) {
	e := newExpiries()
	base := time.Unix(1_800_000_000, 0)
	r := rand.New(rand.NewPCG(1, 2))
	conns := make([]*conn, 500)
	want := map[*conn]int64{}
	for i := range conns {
		conns[i] = &conn{}
		at := base.Add(time.Duration(r.IntN(1000)) * time.Second).UnixNano()
		e.set(conns[i], at)
		want[conns[i]] = at
	}
	for i := 0; i < 200; i++ { // re-authentications move some
		c := conns[r.IntN(len(conns))]
		at := base.Add(time.Duration(r.IntN(2000)) * time.Second).UnixNano()
		e.set(c, at)
		want[c] = at
	}
	for i := 0; i < 100; i++ { // connections that end leave
		c := conns[r.IntN(len(conns))]
		e.remove(c)
		e.remove(c) // twice is harmless
		delete(want, c)
	}
	if e.len() != len(want) {
		t.Fatalf("len %d, want %d", e.len(), len(want))
	}
	if got := e.next(base.Add(-time.Second)); got < time.Second {
		t.Errorf("next before all expiries: %v", got)
	}
	now := base.Add(700 * time.Second)
	due := e.due(now)
	var wantDue []int64
	for _, at := range want {
		if at <= now.UnixNano() {
			wantDue = append(wantDue, at)
		}
	}
	slices.Sort(wantDue)
	var got []int64
	for _, c := range due {
		got = append(got, want[c])
		if c.expIdx != 0 {
			t.Fatal("a due connection still has a heap index")
		}
	}
	if !slices.Equal(got, wantDue) {
		t.Fatalf("due: %d connections, want %d, or out of order", len(got), len(wantDue))
	}
	if e.len() != len(want)-len(wantDue) || e.next(now) == 0 {
		t.Errorf("after due: len %d, next %v", e.len(), e.next(now))
	}
	if newExpiries().next(now) != time.Hour {
		t.Error("an empty heap does not wait an hour")
	}
}
