package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldgw/herald/localaws/sigv4"
)

// eventNames are the notification event types localaws can emit (and so
// accepts in a configuration).
var eventNames = map[string]bool{
	"s3:ObjectCreated:*": true, "s3:ObjectCreated:Put": true, "s3:ObjectCreated:Post": true,
	"s3:ObjectCreated:Copy": true, "s3:ObjectCreated:CompleteMultipartUpload": true,
	"s3:ObjectRemoved:*": true, "s3:ObjectRemoved:Delete": true, "s3:ObjectRemoved:DeleteMarkerCreated": true,
}

// eventMessage is the SQS message body S3 sends; field order and names
// follow AWS's published event message structure (eventVersion 2.1).
type eventMessage struct {
	Records []eventRecord `json:"Records"`
}

type eventRecord struct {
	EventVersion string `json:"eventVersion"`
	EventSource  string `json:"eventSource"`
	AWSRegion    string `json:"awsRegion"`
	EventTime    string `json:"eventTime"`
	EventName    string `json:"eventName"`
	UserIdentity struct {
		PrincipalID string `json:"principalId"`
	} `json:"userIdentity"`
	RequestParameters struct {
		SourceIPAddress string `json:"sourceIPAddress"`
	} `json:"requestParameters"`
	ResponseElements struct {
		RequestID string `json:"x-amz-request-id"`
		HostID    string `json:"x-amz-id-2"`
	} `json:"responseElements"`
	S3 struct {
		SchemaVersion   string `json:"s3SchemaVersion"`
		ConfigurationID string `json:"configurationId"`
		Bucket          struct {
			Name          string `json:"name"`
			OwnerIdentity struct {
				PrincipalID string `json:"principalId"`
			} `json:"ownerIdentity"`
			ARN string `json:"arn"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			Size      *int64 `json:"size,omitempty"`
			ETag      string `json:"eTag,omitempty"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	} `json:"s3"`
}

// testEvent is what S3 sends to each destination when a notification
// configuration is set.
type testEvent struct {
	Service   string `json:"Service"`
	Event     string `json:"Event"`
	Time      string `json:"Time"`
	Bucket    string `json:"Bucket"`
	RequestID string `json:"RequestId"`
	HostID    string `json:"HostId"`
}

// EventKey encodes an object key as S3 event notifications do: form
// encoding (space as '+') of everything but unreserved characters and '/'.
func EventKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '*', c == '/':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func marshalJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(buf.String(), "\n")
}

// queueName returns the queue name of an SQS ARN.
func queueName(arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return "", ErrInvalidArgument.with("", "", nil, "The ARN is not well formed: "+arn)
	}
	return parts[5], nil
}

func eventMatches(pattern, event string) bool {
	pattern = strings.TrimPrefix(pattern, "s3:")
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(event, p)
	}
	return pattern == event
}

func (q *QueueConfig) matches(event, key string) bool {
	ok := false
	for _, e := range q.Events {
		ok = ok || eventMatches(e, event)
	}
	if !ok {
		return false
	}
	if q.Filter != nil {
		for _, r := range q.Filter.Key.Rules {
			switch strings.ToLower(r.Name) {
			case "prefix":
				ok = ok && strings.HasPrefix(key, r.Value)
			case "suffix":
				ok = ok && strings.HasSuffix(key, r.Value)
			}
		}
	}
	return ok
}

func principalOf(r *http.Request) string {
	if res := sigv4.ResultFrom(r.Context()); res != nil {
		return "AWS:" + res.Credential.AccessKey
	}
	return "Anonymous"
}

func sourceIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// eventRecorder returns a commit step that queues, in the same transaction
// as the write, one message per matching queue configuration. size < 0
// marks a removal (no size or eTag in the record).
func (s *Service) eventRecorder(r *http.Request, bucket, key, event string, size int64, etag string) func(*bolt.Tx, uint64) error {
	if s.cfg.Notifier == nil {
		return nil
	}
	ids := requestIDs(r)
	principal, ip, at := principalOf(r), sourceIP(r), s.now()
	return func(tx *bolt.Tx, seq uint64) error {
		v := tx.Bucket(bktBuckets).Get([]byte(bucket))
		if v == nil {
			return nil
		}
		var m bucketMeta
		if err := json.Unmarshal(v, &m); err != nil || m.Notification == nil {
			return err
		}
		var entries []outboxEntry
		for _, qc := range m.Notification.Queues {
			if !qc.matches(event, key) {
				continue
			}
			name, err := queueName(qc.QueueArn)
			if err != nil {
				continue
			}
			var rec eventRecord
			rec.EventVersion, rec.EventSource, rec.AWSRegion = "2.1", "aws:s3", s.cfg.Region
			rec.EventTime = s3Time(at)
			rec.EventName = event
			rec.UserIdentity.PrincipalID = principal
			rec.RequestParameters.SourceIPAddress = ip
			rec.ResponseElements.RequestID, rec.ResponseElements.HostID = ids.requestID, ids.hostID
			rec.S3.SchemaVersion, rec.S3.ConfigurationID = "1.0", qc.ID
			rec.S3.Bucket.Name = bucket
			rec.S3.Bucket.OwnerIdentity.PrincipalID = s.ownerID()
			rec.S3.Bucket.ARN = "arn:aws:s3:::" + bucket
			rec.S3.Object.Key = EventKey(key)
			if size >= 0 {
				sz := size
				rec.S3.Object.Size = &sz
				rec.S3.Object.ETag = strings.Trim(etag, `"`)
			}
			rec.S3.Object.Sequencer = fmt.Sprintf("%018X", seq) // commit order within the bucket
			entries = append(entries, outboxEntry{Queue: name, Body: marshalJSON(eventMessage{Records: []eventRecord{rec}})})
		}
		return putOutbox(tx, entries)
	}
}

// deliverNow sends pending notifications before the response, so a client
// that saw its write succeed finds the message already queued; failures
// stay in the outbox for Run to retry.
func (s *Service) deliverNow(r *http.Request) {
	if s.cfg.Notifier == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.deliverPending(ctx); err != nil {
		s.log.Warn("notification delivery deferred", "err", err)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// maxDeliveryAttempts bounds retries of one notification.
const maxDeliveryAttempts = 10

// deliverPending sends outbox entries in order until empty or an error.
func (s *Service) deliverPending(ctx context.Context) error {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	for {
		items, err := s.store.pendingOutbox(64)
		if err != nil || len(items) == 0 {
			return err
		}
		for _, it := range items {
			id, err := s.cfg.Notifier.Enqueue(ctx, it.entry.Queue, it.entry.Body)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				// A queue that keeps refusing (deleted, say) must not hold
				// back every later event: drop after maxDeliveryAttempts.
				s.failures[string(it.key)]++
				if s.failures[string(it.key)] < maxDeliveryAttempts {
					return fmt.Errorf("notify queue %s: %w", it.entry.Queue, err)
				}
				s.log.Error("notification dropped", "queue", it.entry.Queue, "attempts", maxDeliveryAttempts, "err", err)
			} else {
				s.log.Debug("notification sent", "queue", it.entry.Queue, "messageId", id)
			}
			delete(s.failures, string(it.key))
			if err := s.store.ackOutbox(it.key); err != nil {
				return err
			}
		}
	}
}

// Run delivers notifications left in the outbox (by a crash or an
// unavailable queue) and aborts multipart uploads left incomplete past
// Config.AbortIncompleteAfter, until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	deliver := time.NewTicker(2 * time.Second)
	defer deliver.Stop()
	sweep := time.NewTicker(s.sweepEvery())
	defer sweep.Stop()
	s.sweepUploads()
	for {
		if s.cfg.Notifier != nil {
			if err := s.deliverPending(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("notification delivery failed; will retry", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-deliver.C:
		case <-s.wake:
		case <-sweep.C:
			s.sweepUploads()
		}
	}
}

// ErrNotifierUnavailable is returned when a notification configuration
// names queues but the service has no Notifier.
var ErrNotifierUnavailable = errors.New("s3: no notifier configured")

func validateNotification(c *NotificationConfiguration) error {
	if len(c.Topics) > 0 || len(c.Lambdas) > 0 || len(c.Lambda2) > 0 || c.EB != nil {
		return ErrNotImplemented.with("", "", nil, "localaws supports only QueueConfiguration destinations")
	}
	for i := range c.Queues {
		q := &c.Queues[i]
		if q.ID == "" {
			q.ID = newID()
		}
		if _, err := queueName(q.QueueArn); err != nil {
			return err
		}
		if len(q.Events) == 0 {
			return ErrMalformedXML
		}
		for _, e := range q.Events {
			if !eventNames[e] {
				return ErrInvalidArgument.with("", "", nil, "The event is not supported for notifications: "+e)
			}
		}
		if q.Filter != nil {
			seen := map[string]bool{}
			for _, r := range q.Filter.Key.Rules {
				n := strings.ToLower(r.Name)
				if (n != "prefix" && n != "suffix") || seen[n] {
					return ErrInvalidArgument.with("", "", nil, "Invalid filter rule name: "+r.Name)
				}
				seen[n] = true
			}
		}
	}
	return nil
}

// PutBucketNotification validates c, sends an s3:TestEvent to each queue it
// names (as S3 does; a queue that cannot be reached fails the call) and
// stores it.
func (s *Service) PutBucketNotification(ctx context.Context, bucket string, c NotificationConfiguration) error {
	if err := validateNotification(&c); err != nil {
		return errFor(err, bucket, "")
	}
	if _, err := s.store.getBucket(bucket); err != nil {
		return errFor(err, bucket, "")
	}
	sent := map[string]bool{}
	for _, q := range c.Queues {
		name, _ := queueName(q.QueueArn)
		if sent[name] {
			continue
		}
		sent[name] = true
		if s.cfg.Notifier == nil {
			return ErrInvalidArgument.with(bucket, "", ErrNotifierUnavailable, "Unable to validate the following destination configurations")
		}
		ids := newRequestIDs()
		body := marshalJSON(testEvent{Service: "Amazon S3", Event: "s3:TestEvent", Time: s3Time(s.now()), Bucket: bucket, RequestID: ids.requestID, HostID: ids.hostID})
		if _, err := s.cfg.Notifier.Enqueue(ctx, name, body); err != nil {
			return ErrInvalidArgument.with(bucket, "", err, "Unable to validate the following destination configurations")
		}
	}
	if err := s.store.updateBucket(bucket, func(m *bucketMeta) error { m.Notification = &c; return nil }); err != nil {
		return errFor(err, bucket, "")
	}
	s.log.Info("bucket notification configured", "bucket", bucket, "queues", len(c.Queues))
	return nil
}

// BucketNotification returns a bucket's notification configuration (nil
// when none is set).
func (s *Service) BucketNotification(bucket string) (*NotificationConfiguration, error) {
	m, err := s.store.getBucket(bucket)
	if err != nil {
		return nil, errFor(err, bucket, "")
	}
	return m.Notification, nil
}

func (s *Service) bucketNotification(w http.ResponseWriter, r *http.Request, bucket string) {
	switch r.Method {
	case http.MethodGet:
		c, err := s.BucketNotification(bucket)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if c == nil {
			c = &NotificationConfiguration{}
		}
		writeXML(w, http.StatusOK, struct {
			XMLName xml.Name      `xml:"NotificationConfiguration"`
			Xmlns   string        `xml:"xmlns,attr"`
			Queues  []QueueConfig `xml:"QueueConfiguration"`
		}{Xmlns: xmlns, Queues: c.Queues})
	case http.MethodPut:
		var c NotificationConfiguration
		if err := readXML(r, &c); err != nil {
			s.writeError(w, r, errFor(err, bucket, ""))
			return
		}
		if err := s.PutBucketNotification(r.Context(), bucket, c); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		s.writeError(w, r, ErrMethodNotAllowed)
	}
}
