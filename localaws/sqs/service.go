// Package sqs is an SQS-compatible queue service for local use and tests.
// The real AWS SDK (AWS JSON 1.0 protocol) and the aws CLI (Query protocol)
// talk to it over HTTP through Service.ServeHTTP. Requests reach it already
// authenticated; this package does not check signatures.
//
// Durability: every change is written to a bbolt file by one writer
// goroutine that commits many concurrent requests per transaction (group
// commit). A request is answered only after the commit holding its change
// returned, and with the default SyncEveryCommit policy that commit has been
// fsynced; so an acknowledged SendMessage survives kill -9 and power loss.
// A sent message becomes receivable only once its commit is done, so nothing
// is ever delivered that a crash could take back. Receives write the new
// visibility deadline and receive count in the next group commit but answer
// without waiting for it: in-flight messages reappear after a restart when
// their visibility timeout ends, except those received in the last moments
// before a crash, which reappear at once (earlier redelivery, never loss).
// Deletes, purges and queue changes are answered after their commit.
//
// Receives never scan the file: each queue keeps an in-memory index (a heap
// ordered by the time each message becomes visible), rebuilt from the file at
// start. Message bodies are held in memory too.
package sqs

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var _ http.Handler = (*Service)(nil)

// Service is an SQS-compatible queue service backed by one bbolt file.
type Service struct {
	cfg     Config
	log     *slog.Logger
	st      *store
	baseURL atomic.Pointer[string]
	seq     atomic.Uint64 // last message sequence number handed out

	mu          sync.RWMutex // guards queues and nextQueueID
	queues      map[string]*queue
	nextQueueID uint64
}

// New opens (or creates) the queue store in cfg.DataDir and rebuilds the
// in-memory index. The store's writer goroutine runs until Close.
func New(cfg Config) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	st, err := openStore(cfg.DataDir, cfg.Sync, cfg.Logger)
	if err != nil {
		return nil, err
	}
	loaded, nextID, maxSeq, err := st.load()
	if err != nil {
		st.close()
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Logger, st: st, queues: map[string]*queue{}, nextQueueID: nextID}
	s.baseURL.Store(&cfg.BaseURL)
	s.seq.Store(maxSeq)
	total := 0
	for _, lq := range loaded {
		q := newQueue(lq.meta)
		for _, m := range lq.msgs {
			q.add(m)
		}
		total += len(lq.msgs)
		s.queues[lq.meta.Name] = q
	}
	s.log.Info("sqs store opened", "dir", cfg.DataDir, "queues", len(s.queues), "messages", total)
	return s, nil
}

// Close stops the writer after it committed everything queued and closes
// the file. Requests still running afterwards fail.
func (s *Service) Close() error {
	return s.st.close()
}

// SetBaseURL changes the scheme://host:port used in queue URLs (the server
// may learn its port only after New).
func (s *Service) SetBaseURL(u string) {
	u = strings.TrimRight(u, "/")
	s.baseURL.Store(&u)
}

// QueueARN returns arn:aws:sqs:{region}:{account}:{name}.
func (s *Service) QueueARN(name string) string {
	return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", s.cfg.Region, s.cfg.AccountID, name)
}

func (s *Service) queueURL(name string) string {
	return *s.baseURL.Load() + "/" + s.cfg.AccountID + "/" + name
}

// sweepInterval is how often Run drops messages past their retention period.
const sweepInterval = time.Second

// Run does the background work: it expires messages older than their
// queue's MessageRetentionPeriod. Visibility and delay timers need no
// background work (receivers compute their own deadlines), so ServeHTTP is
// fully functional without Run. Returns nil when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s.expire(now)
		}
	}
}

// expire removes messages past retention from every queue.
func (s *Service) expire(now time.Time) {
	for _, q := range s.allQueues() {
		q.mu.Lock()
		if q.deleted {
			q.mu.Unlock()
			continue
		}
		cutoff := now.UnixMilli() - int64(q.settings.retentionSec)*1000
		var gone []uint64
		for m := q.oldest; m != nil && m.rec.SentMs <= cutoff; m = q.oldest {
			q.remove(m)
			gone = append(gone, m.seq)
		}
		if len(gone) > 0 {
			qid := q.id
			s.st.submit(func(tx *bolt.Tx) error {
				for _, seq := range gone {
					if err := deleteMessage(tx, qid, seq); err != nil {
						return err
					}
				}
				return nil
			})
			s.log.Info("sqs messages expired", "queue", q.name, "count", len(gone))
		}
		q.mu.Unlock()
	}
}

func (s *Service) allQueues() []*queue {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*queue, 0, len(s.queues))
	for _, q := range s.queues {
		out = append(out, q)
	}
	return out
}

// lookup returns the named queue or ErrQueueDoesNotExist.
func (s *Service) lookup(name string) (*queue, error) {
	s.mu.RLock()
	q := s.queues[name]
	s.mu.RUnlock()
	if q == nil {
		return nil, errNoQueue(name)
	}
	return q, nil
}

var queueNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func validQueueName(name string) bool { return queueNameRE.MatchString(name) }

// CreateQueue creates a standard queue, or returns the URL of an existing
// queue whose attributes equal attrs (for the attributes given). It fails
// with ErrQueueAlreadyExists if an existing queue differs.
func (s *Service) CreateQueue(ctx context.Context, name string, attrs map[string]string) (string, error) {
	return s.createQueue(ctx, name, attrs, nil)
}

func (s *Service) createQueue(ctx context.Context, name string, attrs, tags map[string]string) (string, error) {
	if strings.HasSuffix(name, ".fifo") {
		return "", errInvalidParam("QueueName", name, "FIFO queues are not supported by this service.")
	}
	if !validQueueName(name) {
		return "", apiErr(ErrInvalidParameterValue, "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length (queue name %q).", name)
	}
	norm, err := normalizeAttributes(attrs)
	if err != nil {
		return "", err
	}
	if err := s.checkRedriveTarget(name, norm); err != nil {
		return "", err
	}
	s.mu.Lock()
	if q := s.queues[name]; q != nil {
		s.mu.Unlock()
		q.mu.Lock()
		defer q.mu.Unlock()
		for k, v := range norm {
			cur, ok := q.meta.Attributes[k]
			if !ok {
				cur = defaultAttributes[k]
			}
			if cur != v {
				return "", apiErr(ErrQueueAlreadyExists, "A queue already exists with the same name and a different value for attribute %s", k)
			}
		}
		return s.queueURL(name), nil
	}
	now := time.Now().Unix()
	meta := queueMeta{ID: s.nextQueueID, Name: name, Attributes: norm, Tags: tags, CreatedS: now, ModifiedS: now}
	s.nextQueueID++
	next := s.nextQueueID
	q := newQueue(meta)
	s.queues[name] = q
	op := s.st.submit(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktMeta).Put(keyNextID, u64key(next)); err != nil {
			return err
		}
		if err := createQueueBuckets(tx, meta.ID); err != nil {
			return err
		}
		return putQueueMeta(tx, meta)
	})
	s.mu.Unlock()
	if err := op.wait(ctx); err != nil {
		return "", fmt.Errorf("sqs: create queue %q: %w", name, err)
	}
	s.log.Info("sqs queue created", "queue", name)
	return s.queueURL(name), nil
}

// checkRedriveTarget verifies a RedrivePolicy names an existing other queue.
func (s *Service) checkRedriveTarget(name string, attrs map[string]string) error {
	v := attrs[attrRedrivePolicy]
	if v == "" {
		return nil
	}
	rp, err := parseRedrive(v)
	if err != nil {
		return err
	}
	if rp.targetName == name {
		return apiErr(ErrInvalidParameterValue, "Value %s for parameter RedrivePolicy is invalid. Reason: Dead-letter target can not be the queue itself.", v)
	}
	if _, err := s.lookup(rp.targetName); err != nil {
		return apiErr(ErrInvalidParameterValue, "Value %s for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist.", v)
	}
	return nil
}

func (s *Service) deleteQueue(ctx context.Context, name string) error {
	s.mu.Lock()
	q := s.queues[name]
	if q == nil {
		s.mu.Unlock()
		return errNoQueue(name)
	}
	delete(s.queues, name)
	q.mu.Lock()
	q.deleted = true
	q.clear()
	q.wake()
	id := q.id
	op := s.st.submit(func(tx *bolt.Tx) error {
		if err := dropQueueBuckets(tx, id); err != nil {
			return err
		}
		return tx.Bucket(bktQueues).Delete([]byte(name))
	})
	q.mu.Unlock()
	s.mu.Unlock()
	if err := op.wait(ctx); err != nil {
		return fmt.Errorf("sqs: delete queue %q: %w", name, err)
	}
	s.log.Info("sqs queue deleted", "queue", name)
	return nil
}

func (s *Service) purgeQueue(ctx context.Context, name string) error {
	q, err := s.lookup(name)
	if err != nil {
		return err
	}
	err = s.write(ctx, q, "purge queue", func() (*writeOp, error) {
		q.clear()
		id := q.id
		return s.st.submit(func(tx *bolt.Tx) error {
			if err := dropQueueBuckets(tx, id); err != nil {
				return err
			}
			return createQueueBuckets(tx, id)
		}), nil
	})
	if err != nil {
		return err
	}
	s.log.Info("sqs queue purged", "queue", name)
	return nil
}

func (s *Service) getAttributes(name string, names []string) (map[string]string, error) {
	q, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	want, err := expandAttributeNames(names)
	if err != nil {
		return nil, err
	}
	return locked(q, func() (map[string]string, error) {
		out := make(map[string]string, len(want))
		var visible, inflight, delayed int
		if len(want) > 0 {
			visible, inflight, delayed = q.counts(time.Now().UnixNano())
		}
		for _, n := range want {
			switch n {
			case attrQueueArn:
				out[n] = s.QueueARN(name)
			case attrApproxMessages:
				out[n] = fmt.Sprint(visible)
			case attrApproxNotVisible:
				out[n] = fmt.Sprint(inflight)
			case attrApproxDelayed:
				out[n] = fmt.Sprint(delayed)
			case attrCreatedTimestamp:
				out[n] = fmt.Sprint(q.meta.CreatedS)
			case attrLastModifiedTimestamp:
				out[n] = fmt.Sprint(q.meta.ModifiedS)
			default:
				if v, ok := q.meta.Attributes[n]; ok && v != "" {
					out[n] = v
				} else if v, ok := defaultAttributes[n]; ok {
					out[n] = v
				}
			}
		}
		return out, nil
	})
}

func (s *Service) setAttributes(ctx context.Context, name string, attrs map[string]string) error {
	q, err := s.lookup(name)
	if err != nil {
		return err
	}
	if v, ok := attrs[attrFifoQueue]; ok {
		return apiErr(ErrInvalidAttributeName, "Attribute %s=%s can only be set at queue creation.", attrFifoQueue, v)
	}
	norm, err := normalizeAttributes(attrs)
	if err != nil {
		return err
	}
	if err := s.checkRedriveTarget(name, norm); err != nil {
		return err
	}
	return s.write(ctx, q, "set attributes of", func() (*writeOp, error) {
		meta := q.meta
		meta.Attributes = make(map[string]string, len(q.meta.Attributes)+len(norm))
		for k, v := range q.meta.Attributes {
			meta.Attributes[k] = v
		}
		for k, v := range norm {
			if v == "" {
				delete(meta.Attributes, k)
			} else {
				meta.Attributes[k] = v
			}
		}
		meta.ModifiedS = time.Now().Unix()
		q.meta = meta
		q.settings = settingsFrom(meta.Attributes)
		q.wake() // a shorter wait time or visibility change may matter to waiters
		return s.st.submit(func(tx *bolt.Tx) error { return putQueueMeta(tx, meta) }), nil
	})
}

// listQueues returns the sorted names with prefix, starting after the name
// encoded in `after`, at most max.
func (s *Service) listQueues(prefix, after string, max int) (names []string, more bool) {
	s.mu.RLock()
	for n := range s.queues {
		if strings.HasPrefix(n, prefix) && n > after {
			names = append(names, n)
		}
	}
	s.mu.RUnlock()
	sort.Strings(names)
	if len(names) > max {
		return names[:max], true
	}
	return names, false
}

// deadLetterSources lists queues whose RedrivePolicy targets name.
func (s *Service) deadLetterSources(name string) []string {
	var out []string
	for _, q := range s.allQueues() {
		q.mu.Lock()
		if rp := q.settings.redrive; rp != nil && rp.targetName == name && !q.deleted {
			out = append(out, q.meta.Name)
		}
		q.mu.Unlock()
	}
	sort.Strings(out)
	return out
}

func (s *Service) setTags(ctx context.Context, name string, set map[string]string, remove []string) error {
	q, err := s.lookup(name)
	if err != nil {
		return err
	}
	return s.write(ctx, q, "tag", func() (*writeOp, error) {
		meta := q.meta
		meta.Tags = make(map[string]string, len(q.meta.Tags)+len(set))
		for k, v := range q.meta.Tags {
			meta.Tags[k] = v
		}
		for k, v := range set {
			meta.Tags[k] = v
		}
		for _, k := range remove {
			delete(meta.Tags, k)
		}
		q.meta = meta
		return s.st.submit(func(tx *bolt.Tx) error { return putQueueMeta(tx, meta) }), nil
	})
}

func (s *Service) tags(name string) (map[string]string, error) {
	q, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return locked(q, func() (map[string]string, error) {
		out := make(map[string]string, len(q.meta.Tags))
		for k, v := range q.meta.Tags {
			out[k] = v
		}
		return out, nil
	})
}

// newMessageID returns a random UUID (version 4), the format SQS uses.
func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func newNonce() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}
