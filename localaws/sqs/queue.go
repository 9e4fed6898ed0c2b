package sqs

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
)

// queueMeta is a queue's persisted definition.
type queueMeta struct {
	ID         uint64            `json:"id"`
	Name       string            `json:"name"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	CreatedS   int64             `json:"created"`
	ModifiedS  int64             `json:"modified"`
}

// queue is the in-memory index of one queue. Every change to it happens
// under mu together with the submission of the matching store write, so the
// order of writes in the store always equals the order of changes here.
type queue struct {
	id   uint64 // storage id, immutable
	name string // immutable

	mu       sync.Mutex
	meta     queueMeta
	settings queueSettings
	deleted  bool

	msgs map[uint64]*message // by seq; receivable ones (committed)
	// pending holds sent messages whose write is not committed yet; they
	// become receivable only once durable, and purge/delete drop them.
	pending map[uint64]*message
	ready   msgHeap // every message, earliest visibleAt first
	// age list, oldest first: retention expiry pops from the front.
	oldest, newest *message

	// notify is closed (and replaced) when a message may have become
	// receivable; long-polling receivers wait on it. Only allocated while
	// somebody waits.
	notify chan struct{}
}

func newQueue(meta queueMeta) *queue {
	return &queue{id: meta.ID, name: meta.Name, meta: meta, settings: settingsFrom(meta.Attributes), msgs: map[uint64]*message{}, pending: map[uint64]*message{}}
}

// add indexes a message. Caller holds mu.
func (q *queue) add(m *message) {
	q.msgs[m.seq] = m
	heap.Push(&q.ready, m)
	m.prev, m.next = q.newest, nil
	if q.newest != nil {
		q.newest.next = m
	} else {
		q.oldest = m
	}
	q.newest = m
}

// remove drops a message from the index. Caller holds mu.
func (q *queue) remove(m *message) {
	delete(q.msgs, m.seq)
	if m.heapIdx >= 0 {
		heap.Remove(&q.ready, m.heapIdx)
	}
	if m.prev != nil {
		m.prev.next = m.next
	} else {
		q.oldest = m.next
	}
	if m.next != nil {
		m.next.prev = m.prev
	} else {
		q.newest = m.prev
	}
	m.prev, m.next = nil, nil
}

// clear drops every message. Caller holds mu.
func (q *queue) clear() {
	q.msgs = map[uint64]*message{}
	q.pending = map[uint64]*message{}
	q.ready = nil
	q.oldest, q.newest = nil, nil
}

// setVisibleAt moves a message in the visibility order. Caller holds mu.
func (q *queue) setVisibleAt(m *message, at int64) {
	m.visibleAt = at
	heap.Fix(&q.ready, m.heapIdx)
}

// wake tells long-polling receivers to look again. Caller holds mu.
func (q *queue) wake() {
	if q.notify != nil {
		close(q.notify)
		q.notify = nil
	}
}

// waitChan returns the channel the next wake closes. Caller holds mu.
func (q *queue) waitChan() chan struct{} {
	if q.notify == nil {
		q.notify = make(chan struct{})
	}
	return q.notify
}

// counts returns the visible, in-flight and delayed message counts at now.
// Caller holds mu.
func (q *queue) counts(now int64) (visible, inflight, delayed int) {
	for _, m := range q.msgs {
		switch {
		case m.visibleAt <= now:
			visible++
		case m.receiveCount == 0:
			delayed++
		default:
			inflight++
		}
	}
	return visible, inflight, delayed
}

// msgHeap orders messages by (visibleAt, seq).
type msgHeap []*message

func (h msgHeap) Len() int { return len(h) }
func (h msgHeap) Less(i, j int) bool {
	if h[i].visibleAt != h[j].visibleAt {
		return h[i].visibleAt < h[j].visibleAt
	}
	return h[i].seq < h[j].seq
}
func (h msgHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *msgHeap) Push(x any) {
	m := x.(*message)
	m.heapIdx = len(*h)
	*h = append(*h, m)
}
func (h *msgHeap) Pop() any {
	old := *h
	n := len(old)
	m := old[n-1]
	old[n-1] = nil
	m.heapIdx = -1
	*h = old[:n-1]
	return m
}

// locked runs fn with q locked, failing if the queue was deleted meanwhile.
func locked[T any](q *queue, fn func() (T, error)) (T, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		var zero T
		return zero, errNoQueue(q.name)
	}
	return fn()
}

// write runs fn with q locked (see locked) and waits until the write fn
// submitted, if any, is durable; what names the operation in errors
// ("send to").
func (s *Service) write(ctx context.Context, q *queue, what string, fn func() (*writeOp, error)) error {
	op, err := locked(q, fn)
	if err != nil || op == nil {
		return err
	}
	if err := op.wait(ctx); err != nil {
		return fmt.Errorf("sqs: %s %q: %w", what, q.name, err)
	}
	return nil
}
