package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// ErrStorage is returned (wrapped) by Publish when the broker's storage
// cannot write: the message may have reached connected clients but is not
// kept, so it is refused. The error also has a RetryAfter method.
var ErrStorage = errors.New("broker: storage cannot keep new messages")

// storageRetry is how often failing storage tries its pending changes
// again, and so how soon it notices that space has come back.
const storageRetry = time.Second

// storageError is the failure of the last commit.
type storageError struct {
	err   error
	since time.Time
}

func (e *storageError) Error() string {
	return fmt.Sprintf("broker storage failing since %s: %v", e.since.UTC().Format(time.RFC3339), e.err)
}

func (e *storageError) Unwrap() []error { return []error{ErrStorage, e.err} }

// RetryAfter is how long a refused caller should wait before trying again.
func (e *storageError) RetryAfter() time.Duration { return 5 * time.Second }

// storeOp is one queued change: put val at key, delete key, or delete every
// key with prefix key. An op with synced set carries no change: synced is
// called, on the writer's goroutine, once every change queued before it is
// committed (nil) or has failed to be (the error); it must not block.
type storeOp struct {
	bucket []byte
	key    []byte
	val    []byte
	prefix bool
	synced func(error)
}

// Stop flushes queued changes and closes the file. Later events are ignored.
func (s *store) Stop() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.ops)
	s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	<-s.done
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close broker storage: %w", err)
	}
	return nil
}

func (s *store) enqueue(op storeOp) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.db == nil {
		return false
	}
	s.ops <- op
	return true
}

// sync waits until every change queued so far (by this goroutine: changes
// of other goroutines may still be on their way) is on disk. Group commit:
// all callers waiting at the same time share one fsync.
func (s *store) sync(ctx context.Context) error {
	if s.db == nil || s.writeBehind {
		return nil
	}
	done := make(chan error, 1)
	if !s.enqueue(storeOp{synced: func(err error) { done <- err }}) {
		return ErrNotRunning
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// durable reports whether sync waits for the disk (a data directory, not
// the write-behind mode of the benchmarks).
func (s *store) durable() bool { return s.db != nil && !s.writeBehind }

// notify calls then (on the writer's goroutine; it must not block) once
// every change queued so far is on disk, or with why it is not. It
// reports false, and never calls then, when the store is not running.
func (s *store) notify(then func(error)) bool {
	return s.enqueue(storeOp{synced: then})
}

// health returns nil, or why storage cannot keep changes now.
func (s *store) health() error {
	if f := s.failure.Load(); f != nil {
		return f
	}
	return nil
}

// writer commits queued changes, as many per transaction as are waiting,
// and now and then looks whether the file is worth compacting.
// A failed commit (a full disk) keeps its changes and is tried again every
// storageRetry, in order with everything queued since, until it succeeds;
// meanwhile syncs are answered with the failure at once.
func (s *store) writer() {
	defer close(s.done)
	var pending []storeOp
	var retry, look <-chan time.Time
	if s.compact.minFree >= 0 && s.compact.every > 0 {
		t := time.NewTicker(s.compact.every)
		defer t.Stop()
		look = t.C
	}
	for {
		var waiters []func(error)
		select {
		case <-look:
			if len(pending) == 0 {
				s.maybeCompact()
			}
			continue
		case op, ok := <-s.ops:
			if !ok {
				s.commit(pending)
				return
			}
			pending, waiters = s.drain(op, pending)
			if retry != nil {
				// Failing, and not yet time to try again.
				answer(waiters, s.health())
				continue
			}
		case <-retry:
		}
		retry = nil
		err := s.commit(pending)
		answer(waiters, err)
		if err != nil {
			retry = time.After(storageRetry)
			continue
		}
		pending = pending[:0]
	}
}

// drain adds op and whatever else is queued to pending, without waiting,
// and returns the sync requests among them.
func (s *store) drain(op storeOp, pending []storeOp) ([]storeOp, []func(error)) {
	var waiters []func(error)
	for n := 0; ; n++ {
		if op.synced != nil {
			waiters = append(waiters, op.synced)
		} else {
			pending = append(pending, op)
		}
		if n == 4096 {
			return pending, waiters
		}
		var ok bool
		select {
		case op, ok = <-s.ops:
			if !ok {
				return pending, waiters
			}
		default:
			return pending, waiters
		}
	}
}

// commit writes ops in one transaction (bbolt fsyncs before returning) and
// records the outcome.
func (s *store) commit(ops []storeOp) error {
	if len(ops) == 0 {
		return s.health()
	}
	start := time.Now()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, o := range ops {
			if err := apply(tx, o); err != nil {
				return err
			}
		}
		return nil
	})
	s.metrics.storageCommit.Observe(time.Since(start).Seconds())
	if err == nil {
		if f := s.failure.Swap(nil); f != nil {
			s.log.Info("broker storage writes again", "failing_for", time.Since(f.since).Round(time.Millisecond).String(), "ops", len(ops))
		}
		return nil
	}
	s.metrics.storageErrors.Inc()
	f := &storageError{err: err, since: time.Now()}
	if old := s.failure.Load(); old != nil {
		f.since = old.since
	} else {
		s.log.Error("broker storage write failed; refusing new messages until it writes again", "ops", len(ops), "error", err)
	}
	s.failure.Store(f)
	return f
}

func answer(waiters []func(error), err error) {
	for _, w := range waiters {
		w(err)
	}
}

func apply(tx *bbolt.Tx, o storeOp) error {
	b := tx.Bucket(o.bucket)
	switch {
	case o.prefix:
		c := b.Cursor()
		for k, _ := c.Seek(o.key); k != nil && bytes.HasPrefix(k, o.key); k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	case o.val == nil:
		return b.Delete(o.key)
	default:
		return b.Put(o.key, o.val)
	}
}
