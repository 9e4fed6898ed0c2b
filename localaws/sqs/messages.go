package sqs

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Limits from the SQS documentation.
const (
	maxBatchEntries      = 10
	maxBatchPayload      = 262144
	maxMessageAttributes = 10
	maxDelaySeconds      = 900
	maxVisibilitySeconds = 43200
	maxWaitSeconds       = 20
)

// sendEntry is one message to send, as decoded from either protocol.
type sendEntry struct {
	Body     *string
	Delay    *int32
	Attrs    map[string]AttributeValue
	SysAttrs map[string]AttributeValue
}

// sendResult is the outcome of one sendEntry.
type sendResult struct {
	ID       string
	MD5Body  string
	MD5Attrs string
	MD5Sys   string
	Err      error
}

var attrNameRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,256}$`)

// validateAttrs checks message attribute names, types and values and returns
// their size contribution.
func validateAttrs(attrs map[string]AttributeValue, system bool) (int, error) {
	if len(attrs) > maxMessageAttributes {
		return 0, apiErr(ErrInvalidParameterValue, "Number of message attributes [%d] exceeds the allowed maximum [%d].", len(attrs), maxMessageAttributes)
	}
	size := 0
	for name, v := range attrs {
		if system {
			if name != "AWSTraceHeader" {
				return 0, apiErr(ErrInvalidParameterValue, "Message system attribute name '%s' is invalid.", name)
			}
		} else if !attrNameRE.MatchString(name) || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") ||
			strings.Contains(name, "..") || strings.HasPrefix(strings.ToLower(name), "aws.") || strings.HasPrefix(strings.ToLower(name), "amazon.") {
			return 0, apiErr(ErrInvalidParameterValue, "Message attribute name '%s' is invalid.", name)
		}
		if v.DataType == "" {
			return 0, apiErr(ErrInvalidParameterValue, "The message attribute '%s' must contain non-empty message attribute type.", name)
		}
		if len(v.StringListValues) > 0 || len(v.BinaryListValues) > 0 {
			return 0, apiErr(ErrInvalidParameterValue, "Message attribute list values in SendMessage operation are not supported.")
		}
		switch baseType(v.DataType) {
		case "String", "Number":
			if v.StringValue == nil || *v.StringValue == "" {
				return 0, apiErr(ErrInvalidParameterValue, "The message attribute '%s' must contain non-empty message attribute value for message attribute type '%s'.", name, v.DataType)
			}
			if v.BinaryValue != nil {
				return 0, apiErr(ErrInvalidParameterValue, "The message attribute '%s' with type '%s' must use field 'String'.", name, v.DataType)
			}
			if !utf8.ValidString(*v.StringValue) || !validBodyChars(*v.StringValue) {
				return 0, apiErr(ErrInvalidMessageContents, "Invalid characters found in the message attribute '%s'.", name)
			}
			if baseType(v.DataType) == "Number" {
				if _, err := strconv.ParseFloat(strings.TrimSpace(*v.StringValue), 64); err != nil {
					return 0, apiErr(ErrInvalidParameterValue, "Can't cast the value of message (user) attribute '%s' to a number.", name)
				}
			}
			size += len(*v.StringValue)
		case "Binary":
			if len(v.BinaryValue) == 0 {
				return 0, apiErr(ErrInvalidParameterValue, "The message attribute '%s' must contain non-empty message attribute value for message attribute type '%s'.", name, v.DataType)
			}
			if v.StringValue != nil {
				return 0, apiErr(ErrInvalidParameterValue, "The message attribute '%s' with type 'Binary' must use field 'Binary'.", name)
			}
			size += len(v.BinaryValue)
		default:
			return 0, apiErr(ErrInvalidParameterValue, "The type of message (user) attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
		}
		size += len(name) + len(v.DataType)
	}
	if system {
		return 0, nil // system attributes do not count towards the message size
	}
	return size, nil
}

// prepare validates e against the queue settings and builds the stored record.
func prepare(e sendEntry, set queueSettings, senderID string, nowMs int64) (*storedMessage, int32, sendResult, error) {
	var res sendResult
	if e.Body == nil {
		return nil, 0, res, errMissing("MessageBody")
	}
	body := *e.Body
	if body == "" {
		return nil, 0, res, errInvalidParam("MessageBody", `""`, "The message body must contain at least one character.")
	}
	if !utf8.ValidString(body) || !validBodyChars(body) {
		return nil, 0, res, apiErr(ErrInvalidMessageContents, "Invalid binary character in the message body. Only #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF are allowed.")
	}
	delay := int32(set.delaySec)
	if e.Delay != nil {
		delay = *e.Delay
		if delay < 0 || delay > maxDelaySeconds {
			return nil, 0, res, errInvalidParam("DelaySeconds", delay, "DelaySeconds must be >= 0 and <= 900.")
		}
	}
	attrSize, err := validateAttrs(e.Attrs, false)
	if err != nil {
		return nil, 0, res, err
	}
	if _, err := validateAttrs(e.SysAttrs, true); err != nil {
		return nil, 0, res, err
	}
	if size := len(body) + attrSize; size > set.maxSize {
		return nil, 0, res, errInvalidParam("MessageBody", "(message)", fmt.Sprintf("Message must be shorter than %d bytes.", set.maxSize))
	}
	rec := &storedMessage{ID: newMessageID(), Body: body, Attrs: e.Attrs, SysAttrs: e.SysAttrs, SentMs: nowMs, SenderID: senderID, MD5Body: md5Hex([]byte(body))}
	res = sendResult{ID: rec.ID, MD5Body: rec.MD5Body, MD5Attrs: md5OfAttributes(e.Attrs), MD5Sys: md5OfAttributes(e.SysAttrs)}
	return rec, delay, res, nil
}

// send stores entries in q. Every valid entry is acknowledged only after its
// commit; invalid entries carry their own error.
func (s *Service) send(ctx context.Context, q *queue, senderID string, entries []sendEntry) ([]sendResult, error) {
	q.mu.Lock()
	set := q.settings
	q.mu.Unlock()
	results := make([]sendResult, len(entries))
	type prepared struct {
		idx   int
		rec   *storedMessage
		raw   []byte
		delay int32
	}
	var ok []prepared
	nowMs := time.Now().UnixMilli()
	for i, e := range entries {
		rec, delay, res, err := prepare(e, set, senderID, nowMs)
		if err != nil {
			results[i].Err = err
			continue
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			results[i].Err = fmt.Errorf("sqs: encode message: %w", err)
			continue
		}
		results[i] = res
		ok = append(ok, prepared{idx: i, rec: rec, raw: raw, delay: delay})
	}
	if len(ok) == 0 {
		return results, nil
	}
	var msgs []*message
	op, err := locked(q, func() (*writeOp, error) {
		now := time.Now().UnixNano()
		msgs = make([]*message, len(ok))
		states := make([][]byte, len(ok))
		for i, p := range ok {
			m := &message{seq: s.seq.Add(1), rec: p.rec, visibleAt: now + int64(p.delay)*int64(time.Second), heapIdx: -1}
			q.pending[m.seq] = m
			msgs[i], states[i] = m, m.encodeState()
		}
		qid := q.id
		// Once durable, the messages become receivable and long polls wake,
		// straight from the writer goroutine (one hand-off less).
		publish := func() {
			q.mu.Lock()
			defer q.mu.Unlock()
			for _, m := range msgs {
				if _, ok := q.pending[m.seq]; ok {
					delete(q.pending, m.seq)
					if !q.deleted {
						q.add(m)
					}
				}
			}
			q.wake()
		}
		return s.st.submitThen(func(tx *bolt.Tx) error {
			for i, m := range msgs {
				if err := putMessage(tx, qid, m, ok[i].raw, states[i]); err != nil {
					return err
				}
			}
			return nil
		}, publish), nil
	})
	if err != nil {
		return nil, err
	}
	if err := op.wait(ctx); err != nil {
		// Not acknowledged; if the write did fail, the messages stay out
		// of the index (publish only runs after a successful commit).
		return nil, fmt.Errorf("sqs: send to %q: %w", q.name, err)
	}
	return results, nil
}

// Enqueue sends one message with the queue's default delay; used by the S3
// side for event notifications. It returns the message id once durable.
func (s *Service) Enqueue(ctx context.Context, queueName string, body string) (string, error) {
	q, err := s.lookup(queueName)
	if err != nil {
		return "", err
	}
	res, err := s.send(ctx, q, s.cfg.AccountID, []sendEntry{{Body: &body}})
	if err != nil {
		return "", err
	}
	if res[0].Err != nil {
		return "", res[0].Err
	}
	return res[0].ID, nil
}

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
		out, wake, next, wait, err := s.tryReceive(q, p)
		if err != nil {
			return nil, err
		}
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

// tryReceive takes what is receivable now. When nothing is, it registers the
// caller as a waiter and returns the channel to wait on and the time the
// next message becomes visible (0 if none).
func (s *Service) tryReceive(q *queue, p receiveParams) (out []delivery, wake chan struct{}, next int64, wait int, err error) {
	q.mu.Lock()
	rp := q.settings.redrive
	q.mu.Unlock()
	var dlq *queue
	if rp != nil {
		if d, err := s.lookup(rp.targetName); err == nil && d != q {
			dlq = d
		}
	}
	// Lock source and dead-letter queue in id order so two queues that
	// redrive into each other cannot deadlock.
	first, second := q, dlq
	if dlq != nil && dlq.id < q.id {
		first, second = dlq, q
	}
	first.mu.Lock()
	if second != nil {
		second.mu.Lock()
		defer second.mu.Unlock()
	}
	defer first.mu.Unlock()
	if q.deleted {
		return nil, nil, 0, 0, errNoQueue(q.name)
	}
	if dlq != nil && (dlq.deleted || q.settings.redrive == nil || q.settings.redrive.targetName != dlq.name) {
		dlq = nil
	}
	wait = q.settings.waitSec
	if p.Wait != nil {
		wait = *p.Wait
	}
	vt := q.settings.visibilitySec
	if p.Visibility != nil {
		vt = *p.Visibility
	}
	now := time.Now()
	nowNs, nowMs := now.UnixNano(), now.UnixMilli()
	cutoff := nowMs - int64(q.settings.retentionSec)*1000
	var (
		states  []*message
		stBytes [][]byte
		gone    []uint64
		moved   []*message
		movedTo []*message
	)
	picked := map[uint64]bool{}
	for len(out) < p.Max && q.ready.Len() > 0 {
		m := q.ready[0]
		if m.visibleAt > nowNs || picked[m.seq] {
			break
		}
		if m.rec.SentMs <= cutoff {
			q.remove(m)
			gone = append(gone, m.seq)
			continue
		}
		if dlq != nil && int(m.receiveCount) >= q.settings.redrive.MaxReceiveCount {
			q.remove(m)
			nm := &message{seq: s.seq.Add(1), rec: m.rec, visibleAt: nowNs, receiveCount: m.receiveCount, firstRecvMs: m.firstRecvMs}
			dlq.add(nm)
			moved, movedTo = append(moved, m), append(movedTo, nm)
			continue
		}
		picked[m.seq] = true
		m.receiveCount++
		if m.firstRecvMs == 0 {
			m.firstRecvMs = nowMs
		}
		m.nonce = newNonce()
		q.setVisibleAt(m, nowNs+int64(vt)*int64(time.Second))
		states, stBytes = append(states, m), append(stBytes, m.encodeState())
		out = append(out, delivery{rec: m.rec, receipt: encodeReceipt(q.id, m.seq, m.nonce), receiveCount: m.receiveCount, firstRecvMs: m.firstRecvMs})
	}
	if len(states) > 0 || len(gone) > 0 || len(moved) > 0 {
		qid := q.id
		var dlqID uint64
		var movedRaw [][]byte
		var movedState [][]byte
		if len(moved) > 0 {
			dlqID = dlq.id
			dlq.wake()
			for _, nm := range movedTo {
				raw, _ := json.Marshal(nm.rec)
				movedRaw = append(movedRaw, raw)
				movedState = append(movedState, nm.encodeState())
			}
			s.log.Info("sqs messages moved to dead-letter queue", "queue", q.name, "dlq", dlq.name, "count", len(moved))
		}
		s.st.submit(func(tx *bolt.Tx) error {
			for i, m := range states {
				if err := putState(tx, qid, m.seq, stBytes[i]); err != nil {
					return err
				}
			}
			for _, seq := range gone {
				if err := deleteMessage(tx, qid, seq); err != nil {
					return err
				}
			}
			for i, m := range moved {
				if err := deleteMessage(tx, qid, m.seq); err != nil {
					return err
				}
				if err := putMessage(tx, dlqID, movedTo[i], movedRaw[i], movedState[i]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if len(out) == 0 && wait > 0 {
		wake = q.waitChan()
		if q.ready.Len() > 0 {
			next = q.ready[0].visibleAt
		}
	}
	return out, wake, next, wait, nil
}

// deleteMessages deletes by receipt handle. A handle from an earlier
// delivery of a message that was received again since is accepted and
// ignored, as SQS documents, so the newer delivery stays; a handle for a
// message already gone is accepted too. Only malformed handles and handles
// of another queue fail, with ReceiptHandleIsInvalid.
func (s *Service) deleteMessages(ctx context.Context, q *queue, handles []string) ([]error, error) {
	errs := make([]error, len(handles))
	op, err := locked(q, func() (*writeOp, error) {
		var seqs []uint64
		for i, h := range handles {
			qid, seq, nonce, ok := decodeReceipt(h)
			if !ok || qid != q.id {
				errs[i] = apiErr(ErrReceiptHandleIsInvalid, "The input receipt handle %q is not a valid receipt handle.", h)
				continue
			}
			m := q.msgs[seq]
			if m == nil || m.nonce != nonce {
				continue
			}
			q.remove(m)
			seqs = append(seqs, seq)
		}
		if len(seqs) == 0 {
			return nil, nil
		}
		qid := q.id
		return s.st.submit(func(tx *bolt.Tx) error {
			for _, seq := range seqs {
				if err := deleteMessage(tx, qid, seq); err != nil {
					return err
				}
			}
			return nil
		}), nil
	})
	if err != nil {
		return nil, err
	}
	if op != nil {
		if err := op.wait(ctx); err != nil {
			return nil, fmt.Errorf("sqs: delete from %q: %w", q.name, err)
		}
	}
	return errs, nil
}

// visibilityChange is one ChangeMessageVisibility entry.
type visibilityChange struct {
	Handle  string
	Timeout int
}

// changeVisibility sets new visibility deadlines. Stale handles (the message
// was received again, or is gone) fail with InvalidParameterValue as on AWS;
// a current handle of a message whose visibility already ended fails with
// MessageNotInflight.
func (s *Service) changeVisibility(ctx context.Context, q *queue, changes []visibilityChange) ([]error, error) {
	errs := make([]error, len(changes))
	op, err := locked(q, func() (*writeOp, error) {
		now := time.Now().UnixNano()
		var msgs []*message
		var states [][]byte
		for i, c := range changes {
			if c.Timeout < 0 || c.Timeout > maxVisibilitySeconds {
				errs[i] = errInvalidParam("VisibilityTimeout", c.Timeout, "VisibilityTimeout must be an integer between 0 and 43200.")
				continue
			}
			qid, seq, nonce, ok := decodeReceipt(c.Handle)
			if !ok || qid != q.id {
				errs[i] = apiErr(ErrReceiptHandleIsInvalid, "The input receipt handle %q is not a valid receipt handle.", c.Handle)
				continue
			}
			m := q.msgs[seq]
			if m == nil || m.nonce != nonce {
				errs[i] = errInvalidParam("ReceiptHandle", c.Handle, "Message does not exist or is not available for visibility timeout change.")
				continue
			}
			if m.visibleAt <= now {
				errs[i] = apiErr(ErrMessageNotInflight, "The message referred to isn't in flight.")
				continue
			}
			q.setVisibleAt(m, now+int64(c.Timeout)*int64(time.Second))
			msgs, states = append(msgs, m), append(states, m.encodeState())
			if c.Timeout == 0 {
				q.wake()
			}
		}
		if len(msgs) == 0 {
			return nil, nil
		}
		qid := q.id
		return s.st.submit(func(tx *bolt.Tx) error {
			for i, m := range msgs {
				if err := putState(tx, qid, m.seq, states[i]); err != nil {
					return err
				}
			}
			return nil
		}), nil
	})
	if err != nil {
		return nil, err
	}
	if op != nil {
		if err := op.wait(ctx); err != nil {
			return nil, fmt.Errorf("sqs: change visibility in %q: %w", q.name, err)
		}
	}
	return errs, nil
}
