package broker

import (
	"container/heap"
	"sync"
	"time"
)

// expiries orders the browser connections by their token's expiry, so one
// timer in Run ends each at its time: a timer per connection would cost
// ~0.4 KiB of heap per idle session, this ~16 bytes.
type expiries struct {
	mu   sync.Mutex
	h    expiryHeap
	wake chan struct{} // the earliest expiry changed
}

func newExpiries() *expiries { return &expiries{wake: make(chan struct{}, 1)} }

// set gives c the expiry at (unix ns), adding it or moving it. The
// expiry changes under the lock so the heap never sees it half-updated.
func (e *expiries) set(c *conn, at int64) {
	e.mu.Lock()
	c.expiresAt.Store(at)
	if c.expIdx == 0 {
		heap.Push(&e.h, c)
	} else {
		heap.Fix(&e.h, c.expIdx-1)
	}
	first := e.h[0] == c
	e.mu.Unlock()
	if first {
		e.signal()
	}
}

// remove drops c (a connection that ended); harmless if absent.
func (e *expiries) remove(c *conn) {
	e.mu.Lock()
	if c.expIdx > 0 {
		heap.Remove(&e.h, c.expIdx-1)
	}
	e.mu.Unlock()
}

func (e *expiries) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// due removes and returns the connections whose token expired by now.
func (e *expiries) due(now time.Time) []*conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*conn
	for len(e.h) > 0 && e.h[0].expiresAt.Load() <= now.UnixNano() {
		out = append(out, heap.Pop(&e.h).(*conn))
	}
	return out
}

// next is how long until the earliest expiry (an hour when there is none;
// a later set wakes Run anyway).
func (e *expiries) next(now time.Time) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.h) == 0 {
		return time.Hour
	}
	return max(time.Duration(e.h[0].expiresAt.Load()-now.UnixNano()), 0)
}

func (e *expiries) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.h)
}

// expiryHeap is a min-heap of connections by expiresAt; each keeps its
// index + 1 in expIdx (0 when not in the heap). Guarded by expiries.mu.
type expiryHeap []*conn

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expiresAt.Load() < h[j].expiresAt.Load() }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].expIdx, h[j].expIdx = i+1, j+1
}
func (h *expiryHeap) Push(x any) {
	c := x.(*conn)
	*h = append(*h, c)
	c.expIdx = len(*h)
}
func (h *expiryHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.expIdx = 0
	return c
}
