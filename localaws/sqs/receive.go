package sqs

import (
	"context"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// receiveParams are ReceiveMessage's inputs after validation.
type receiveParams struct {
	Max        int
	Visibility *int // nil: queue default
	Wait       *int // nil: queue default
	SysNames   []string
	AttrNames  []string
}

// delivery is one received message: an immutable record plus the state the
// receive gave it.
type delivery struct {
	rec          *storedMessage
	receipt      string
	receiveCount uint32
	firstRecvMs  int64
}

func validateReceive(p *receiveParams) error {
	if p.Max < 1 || p.Max > maxBatchEntries {
		return errInvalidParam("MaxNumberOfMessages", p.Max, "Must be between 1 and 10, if provided.")
	}
	if p.Visibility != nil && (*p.Visibility < 0 || *p.Visibility > maxVisibilitySeconds) {
		return errInvalidParam("VisibilityTimeout", *p.Visibility, "Must be between 0 and 43200, if provided.")
	}
	if p.Wait != nil && (*p.Wait < 0 || *p.Wait > maxWaitSeconds) {
		return errInvalidParam("WaitTimeSeconds", *p.Wait, "Must be >= 0 and <= 20, if provided.")
	}
	return nil
}

// receive returns up to p.Max messages, long-polling up to the wait time.
// It wakes as soon as a sent message is committed (or a message becomes
// visible again).
func (s *Service) receive(ctx context.Context, q *queue, p receiveParams) ([]delivery, error) {
	if err := validateReceive(&p); err != nil {
		return nil, err
	}
	var deadline time.Time
	for {
		r, err := s.tryReceive(q, p)
		if err != nil {
			return nil, err
		}
		out, wake, next, wait := r.out, r.wake, r.next, r.wait
		// The new receive state is committed by the next group commit, but
		// the answer does not wait for it: a crash in that window can only
		// make these messages visible again early, never lose them. Every
		// message handed out here was already durable (see send).
		if len(out) > 0 {
			return out, nil
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(time.Duration(wait) * time.Second)
		}
		if wake == nil || !now.Before(deadline) {
			return nil, nil
		}
		until := deadline
		if next > 0 && time.Unix(0, next).Before(until) {
			until = time.Unix(0, next)
		}
		timer := time.NewTimer(until.Sub(now))
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		if ctx.Err() != nil {
			return nil, nil
		}
	}
}

// receiveResult is what one look at a queue found: messages to hand out,
// or, when there were none and the caller may wait, the channel to wait on
// and when the next message becomes visible (unix ns, 0 if none).
type receiveResult struct {
	out  []delivery
	wake chan struct{}
	next int64
	wait int // the long-poll wait that applies, seconds
}

// tryReceive takes what is receivable now. When nothing is, it registers the
// caller as a waiter.
func (s *Service) tryReceive(q *queue, p receiveParams) (receiveResult, error) {
	dlq := s.deadLetterQueue(q)
	defer lockQueues(q, dlq)()
	if q.deleted {
		return receiveResult{}, errNoQueue(q.name)
	}
	if dlq != nil && (dlq.deleted || q.settings.redrive == nil || q.settings.redrive.targetName != dlq.name) {
		dlq = nil
	}
	r := receiveResult{wait: q.settings.waitSec}
	if p.Wait != nil {
		r.wait = *p.Wait
	}
	vt := q.settings.visibilitySec
	if p.Visibility != nil {
		vt = *p.Visibility
	}
	b := s.take(q, dlq, p.Max, vt, time.Now())
	s.persist(q, dlq, b)
	r.out = b.out
	if len(r.out) == 0 && r.wait > 0 {
		r.wake = q.waitChan()
		if q.ready.Len() > 0 {
			r.next = q.ready[0].visibleAt
		}
	}
	return r, nil
}

// deadLetterQueue is q's redrive target, if it has one other than itself.
func (s *Service) deadLetterQueue(q *queue) *queue {
	q.mu.Lock()
	rp := q.settings.redrive
	q.mu.Unlock()
	if rp == nil {
		return nil
	}
	if d, err := s.lookup(rp.targetName); err == nil && d != q {
		return d
	}
	return nil
}

// lockQueues locks a queue and its dead-letter queue (if any) in id order,
// so two queues that redrive into each other cannot deadlock, and returns
// the unlock.
func lockQueues(q, dlq *queue) (unlock func()) {
	first, second := q, dlq
	if dlq != nil && dlq.id < q.id {
		first, second = dlq, q
	}
	first.mu.Lock()
	if second != nil {
		second.mu.Lock()
	}
	return func() {
		if second != nil {
			second.mu.Unlock()
		}
		first.mu.Unlock()
	}
}

// receiveBatch is what one receive changed: the messages handed out (with
// their new state), expired ones dropped, ones moved to the dead-letter
// queue.
type receiveBatch struct {
	out     []delivery
	states  []*message
	stBytes [][]byte
	gone    []uint64
	moved   []*message // as they were in the source queue
	movedTo []*message // as they are in the dead-letter queue
}

// take hands out up to max receivable messages of q (locked, as is dlq),
// hidden for vt seconds; on the way it drops messages past retention and
// moves those past the redrive count to dlq.
func (s *Service) take(q, dlq *queue, max, vt int, now time.Time) receiveBatch {
	var b receiveBatch
	nowNs, nowMs := now.UnixNano(), now.UnixMilli()
	cutoff := nowMs - int64(q.settings.retentionSec)*1000
	picked := map[uint64]bool{}
	for len(b.out) < max && q.ready.Len() > 0 {
		m := q.ready[0]
		if m.visibleAt > nowNs || picked[m.seq] {
			break
		}
		if m.rec.SentMs <= cutoff {
			q.remove(m)
			b.gone = append(b.gone, m.seq)
			continue
		}
		if dlq != nil && int(m.receiveCount) >= q.settings.redrive.MaxReceiveCount {
			q.remove(m)
			nm := &message{seq: s.seq.Add(1), rec: m.rec, visibleAt: nowNs, receiveCount: m.receiveCount, firstRecvMs: m.firstRecvMs}
			dlq.add(nm)
			b.moved, b.movedTo = append(b.moved, m), append(b.movedTo, nm)
			continue
		}
		picked[m.seq] = true
		m.receiveCount++
		if m.firstRecvMs == 0 {
			m.firstRecvMs = nowMs
		}
		m.nonce = newNonce()
		q.setVisibleAt(m, nowNs+int64(vt)*int64(time.Second))
		b.states, b.stBytes = append(b.states, m), append(b.stBytes, m.encodeState())
		b.out = append(b.out, delivery{rec: m.rec, receipt: encodeReceipt(q.id, m.seq, m.nonce), receiveCount: m.receiveCount, firstRecvMs: m.firstRecvMs})
	}
	return b
}

// persist submits what take changed as one write; it does not wait for it
// (see receive).
func (s *Service) persist(q, dlq *queue, b receiveBatch) {
	if len(b.states) == 0 && len(b.gone) == 0 && len(b.moved) == 0 {
		return
	}
	qid := q.id
	var dlqID uint64
	var movedRaw, movedState [][]byte
	if len(b.moved) > 0 {
		dlqID = dlq.id
		dlq.wake()
		for _, nm := range b.movedTo {
			raw, _ := json.Marshal(nm.rec)
			movedRaw = append(movedRaw, raw)
			movedState = append(movedState, nm.encodeState())
		}
		s.log.Info("sqs messages moved to dead-letter queue", "queue", q.name, "dlq", dlq.name, "count", len(b.moved))
	}
	s.st.submit(func(tx *bolt.Tx) error {
		for i, m := range b.states {
			if err := putState(tx, qid, m.seq, b.stBytes[i]); err != nil {
				return err
			}
		}
		for _, seq := range b.gone {
			if err := deleteMessage(tx, qid, seq); err != nil {
				return err
			}
		}
		for i, m := range b.moved {
			if err := deleteMessage(tx, qid, m.seq); err != nil {
				return err
			}
			if err := putMessage(tx, dlqID, b.movedTo[i], movedRaw[i], movedState[i]); err != nil {
				return err
			}
		}
		return nil
	})
}
