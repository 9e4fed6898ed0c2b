package sqs

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket layout of sqs.db:
//
//	queues/            name -> queueMeta (JSON)
//	meta/              "nextQueueID" -> uint64
//	q/<queue id>/m/    seq -> storedMessage (JSON, immutable)
//	q/<queue id>/s/    seq -> message state (28 bytes, rewritten on receive)
//
// Queues are stored under a numeric id so that writes still in flight for a
// deleted queue can never land in a new queue of the same name.
var (
	bktQueues = []byte("queues")
	bktMeta   = []byte("meta")
	bktQ      = []byte("q")
	bktMsgs   = []byte("m")
	bktState  = []byte("s")
	keyNextID = []byte("nextQueueID")
)

// maxBatchOps bounds how many queued writes share one transaction.
const maxBatchOps = 4096

// store owns the bbolt file and the single writer goroutine that applies
// writes in submission order, many per transaction (group commit). The
// writer starts in openStore and ends in close. The pending list is
// unbounded so submit never blocks: callers submit while holding a queue
// lock, and the writer takes queue locks in after-commit callbacks.
type store struct {
	db   *bolt.DB
	log  *slog.Logger
	kick chan struct{} // capacity 1: "pending is not empty"
	done chan struct{}

	mu      sync.Mutex // guards pending and closed
	pending []*writeOp
	closed  bool
}

// writeOp is one queued change; done receives the commit result after the
// optional after callback ran (in the writer goroutine, only on success).
type writeOp struct {
	fn    func(tx *bolt.Tx) error
	after func()
	err   error
	done  chan error
}

func openStore(dir string, policy SyncPolicy, log *slog.Logger) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sqs: create data dir %q: %w", dir, err)
	}
	path := filepath.Join(dir, "sqs.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        5 * time.Second, // another process holding the file lock
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		NoSync:         policy == SyncNone,
	})
	if err != nil {
		return nil, fmt.Errorf("sqs: open %q: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktQueues, bktMeta, bktQ} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqs: init %q: %w", path, err)
	}
	st := &store{db: db, log: log, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go st.writer()
	return st, nil
}

// submit queues fn for the next commit and returns at once. Callers submit
// while holding the lock of the queue they changed, so per-queue write order
// matches in-memory order.
func (st *store) submit(fn func(tx *bolt.Tx) error) *writeOp {
	return st.submitThen(fn, nil)
}

// submitThen is submit with a callback run by the writer right after a
// successful commit, before waiters are told; it must not submit.
func (st *store) submitThen(fn func(tx *bolt.Tx) error, after func()) *writeOp {
	op := &writeOp{fn: fn, after: after, done: make(chan error, 1)}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		op.done <- errClosed
		return op
	}
	st.pending = append(st.pending, op)
	st.mu.Unlock()
	select {
	case st.kick <- struct{}{}:
	default:
	}
	return op
}

// wait blocks until op is committed (and, by policy, fsynced). If ctx ends
// first the write still happens; only the caller stops waiting.
func (op *writeOp) wait(ctx context.Context) error {
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (st *store) writer() {
	defer close(st.done)
	var batch []*writeOp
	for {
		<-st.kick
		st.mu.Lock()
		batch, st.pending = st.pending, batch[:0]
		closed := st.closed
		st.mu.Unlock()
		for len(batch) > 0 {
			n := min(len(batch), maxBatchOps)
			st.commit(batch[:n])
			batch = batch[n:]
		}
		if closed {
			return
		}
	}
}

func (st *store) commit(batch []*writeOp) {
	err := st.db.Update(func(tx *bolt.Tx) error {
		for _, op := range batch {
			op.err = op.fn(tx)
		}
		return nil
	})
	if err != nil {
		st.log.Error("sqs store commit failed", "ops", len(batch), "err", err)
	}
	for _, op := range batch {
		if err != nil {
			op.done <- fmt.Errorf("sqs: commit: %w", err)
			continue
		}
		if op.after != nil && op.err == nil {
			op.after()
		}
		op.done <- op.err
	}
}

func (st *store) close() error {
	st.mu.Lock()
	if !st.closed {
		st.closed = true
		select {
		case st.kick <- struct{}{}:
		default:
		}
	}
	st.mu.Unlock()
	<-st.done
	return st.db.Close()
}

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// queueBucket returns the message buckets of queue id, or nils if the queue
// has been deleted in an earlier write.
func queueBucket(tx *bolt.Tx, id uint64) (msgs, state *bolt.Bucket) {
	qb := tx.Bucket(bktQ).Bucket(u64key(id))
	if qb == nil {
		return nil, nil
	}
	return qb.Bucket(bktMsgs), qb.Bucket(bktState)
}

func putQueueMeta(tx *bolt.Tx, meta queueMeta) error {
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	return tx.Bucket(bktQueues).Put([]byte(meta.Name), b)
}

func createQueueBuckets(tx *bolt.Tx, id uint64) error {
	qb, err := tx.Bucket(bktQ).CreateBucketIfNotExists(u64key(id))
	if err != nil {
		return err
	}
	if _, err := qb.CreateBucketIfNotExists(bktMsgs); err != nil {
		return err
	}
	_, err = qb.CreateBucketIfNotExists(bktState)
	return err
}

func dropQueueBuckets(tx *bolt.Tx, id uint64) error {
	err := tx.Bucket(bktQ).DeleteBucket(u64key(id))
	if err == bolt.ErrBucketNotFound {
		return nil
	}
	return err
}

// putMessage writes a new message with its initial state.
func putMessage(tx *bolt.Tx, qid uint64, m *message, rec []byte, state []byte) error {
	mb, sb := queueBucket(tx, qid)
	if mb == nil {
		return nil // queue deleted meanwhile
	}
	k := u64key(m.seq)
	if err := mb.Put(k, rec); err != nil {
		return err
	}
	return sb.Put(k, state)
}

// putState rewrites a message's state if the message still exists.
func putState(tx *bolt.Tx, qid, seq uint64, state []byte) error {
	mb, sb := queueBucket(tx, qid)
	if mb == nil {
		return nil
	}
	k := u64key(seq)
	if mb.Get(k) == nil {
		return nil
	}
	return sb.Put(k, state)
}

func deleteMessage(tx *bolt.Tx, qid, seq uint64) error {
	mb, sb := queueBucket(tx, qid)
	if mb == nil {
		return nil
	}
	k := u64key(seq)
	if err := mb.Delete(k); err != nil {
		return err
	}
	return sb.Delete(k)
}

// loadedQueue is one queue read back at startup.
type loadedQueue struct {
	meta queueMeta
	msgs []*message
}

// load reads every queue and message. Messages without state get state that
// makes them visible now; state without a message is ignored.
func (st *store) load() (queues []loadedQueue, nextQueueID, maxSeq uint64, err error) {
	err = st.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bktMeta).Get(keyNextID); len(v) == 8 {
			nextQueueID = binary.BigEndian.Uint64(v)
		}
		return tx.Bucket(bktQueues).ForEach(func(k, v []byte) error {
			var meta queueMeta
			if err := json.Unmarshal(v, &meta); err != nil {
				return fmt.Errorf("queue %q: %w", k, err)
			}
			if meta.ID >= nextQueueID {
				nextQueueID = meta.ID + 1
			}
			lq := loadedQueue{meta: meta}
			mb, sb := queueBucket(tx, meta.ID)
			if mb == nil {
				return fmt.Errorf("queue %q: message bucket %d missing", k, meta.ID)
			}
			err := mb.ForEach(func(k, v []byte) error {
				if len(k) != 8 {
					return nil
				}
				rec := new(storedMessage)
				if err := json.Unmarshal(v, rec); err != nil {
					st.log.Warn("sqs skipping unreadable message", "queue", meta.Name, "err", err)
					return nil
				}
				m := &message{seq: binary.BigEndian.Uint64(k), rec: rec}
				if !m.decodeState(sb.Get(k)) {
					m.visibleAt = 0
				}
				if m.seq > maxSeq {
					maxSeq = m.seq
				}
				lq.msgs = append(lq.msgs, m)
				return nil
			})
			if err != nil {
				return err
			}
			queues = append(queues, lq)
			return nil
		})
	})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("sqs: load: %w", err)
	}
	if nextQueueID == 0 {
		nextQueueID = 1
	}
	return queues, nextQueueID, maxSeq, nil
}
