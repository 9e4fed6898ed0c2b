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
	err := s.write(ctx, q, "send to", func() (*writeOp, error) {
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
		// Not acknowledged; if the write did fail, the messages stay out
		// of the index (publish only runs after a successful commit).
		return nil, err
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

// deleteMessages deletes by receipt handle. A handle from an earlier
// delivery of a message that was received again since is accepted and
// ignored, as SQS documents, so the newer delivery stays; a handle for a
// message already gone is accepted too. Only malformed handles and handles
// of another queue fail, with ReceiptHandleIsInvalid.
func (s *Service) deleteMessages(ctx context.Context, q *queue, handles []string) ([]error, error) {
	errs := make([]error, len(handles))
	err := s.write(ctx, q, "delete from", func() (*writeOp, error) {
		var seqs []uint64
		for i, h := range handles {
			seq, nonce, err := q.receipt(h)
			if err != nil {
				errs[i] = err
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
	return errs, err
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
	err := s.write(ctx, q, "change visibility in", func() (*writeOp, error) {
		now := time.Now().UnixNano()
		var msgs []*message
		var states [][]byte
		for i, c := range changes {
			if c.Timeout < 0 || c.Timeout > maxVisibilitySeconds {
				errs[i] = errInvalidParam("VisibilityTimeout", c.Timeout, "VisibilityTimeout must be an integer between 0 and 43200.")
				continue
			}
			seq, nonce, err := q.receipt(c.Handle)
			if err != nil {
				errs[i] = err
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
	return errs, err
}
