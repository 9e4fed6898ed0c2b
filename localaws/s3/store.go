package s3

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Layout under the S3 data directory:
//
//	index.db          bbolt: buckets, object metadata, uploads, outbox
//	objects/ab/<id>   object bodies, named by a random id (never by key)
//	parts/<upload>/N  multipart parts
//	tmp/<id>          bodies being received; emptied at start
//
// An object becomes visible only when its metadata is committed to the
// index, after its body was fsynced and renamed into objects/. A crash
// before that commit leaves at most an unreferenced file, removed at the
// next start, so no half-written object is ever visible.
var (
	bktBuckets = []byte("buckets")
	bktUploads = []byte("uploads")
	bktOutbox  = []byte("outbox")
)

func objectsBucketName(bucket string) []byte { return []byte("objects/" + bucket) }

// objectMeta is what the index holds per key.
type objectMeta struct {
	File               string            `json:"file"`
	Size               int64             `json:"size"`
	ETag               string            `json:"etag"` // quoted
	ContentType        string            `json:"contentType,omitempty"`
	ContentEncoding    string            `json:"contentEncoding,omitempty"`
	ContentDisposition string            `json:"contentDisposition,omitempty"`
	CacheControl       string            `json:"cacheControl,omitempty"`
	UserMeta           map[string]string `json:"userMeta,omitempty"`
	Modified           time.Time         `json:"modified"`
}

// bucketMeta is what the index holds per bucket.
type bucketMeta struct {
	Created      time.Time                  `json:"created"`
	CORS         *CORSConfiguration         `json:"cors,omitempty"`
	Notification *NotificationConfiguration `json:"notification,omitempty"`
}

type partMeta struct {
	ETag     string    `json:"etag"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

type uploadMeta struct {
	Bucket    string           `json:"bucket"`
	Key       string           `json:"key"`
	Initiated time.Time        `json:"initiated"`
	Object    objectMeta       `json:"object"` // content type, user metadata
	Parts     map[int]partMeta `json:"parts,omitempty"`
}

// outboxEntry is a notification waiting to be delivered.
type outboxEntry struct {
	Queue string `json:"queue"`
	Body  string `json:"body"`
}

type store struct {
	dir string
	db  *bolt.DB
}

func openStore(dir string) (*store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "objects"), filepath.Join(dir, "parts"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create s3 dir %s: %w", d, err)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open s3 index in %s: %w", dir, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktBuckets, bktUploads, bktOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init s3 index in %s: %w", dir, err)
	}
	s := &store{dir: dir, db: db}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *store) close() error { return s.db.Close() }

// recover removes what a crash can leave behind: temp files, object files
// no index entry references, part directories of unknown uploads.
func (s *store) recover() error {
	if err := os.RemoveAll(filepath.Join(s.dir, "tmp")); err != nil {
		return fmt.Errorf("clear s3 tmp: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "tmp"), 0o755); err != nil {
		return fmt.Errorf("create s3 tmp: %w", err)
	}
	live := map[string]bool{}
	uploads := map[string]bool{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktUploads).ForEach(func(k, _ []byte) error { uploads[string(k)] = true; return nil }); err != nil {
			return err
		}
		return tx.Bucket(bktBuckets).ForEach(func(name, _ []byte) error {
			ob := tx.Bucket(objectsBucketName(string(name)))
			if ob == nil {
				return nil
			}
			return ob.ForEach(func(_, v []byte) error {
				var m objectMeta
				if json.Unmarshal(v, &m) == nil {
					live[m.File] = true
				}
				return nil
			})
		})
	})
	if err != nil {
		return fmt.Errorf("scan s3 index: %w", err)
	}
	shards, _ := os.ReadDir(filepath.Join(s.dir, "objects"))
	for _, sh := range shards {
		files, _ := os.ReadDir(filepath.Join(s.dir, "objects", sh.Name()))
		for _, f := range files {
			if !live[f.Name()] {
				_ = os.Remove(filepath.Join(s.dir, "objects", sh.Name(), f.Name()))
			}
		}
	}
	parts, _ := os.ReadDir(filepath.Join(s.dir, "parts"))
	for _, p := range parts {
		if !uploads[p.Name()] {
			_ = os.RemoveAll(filepath.Join(s.dir, "parts", p.Name()))
		}
	}
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *store) objectPath(id string) string {
	return filepath.Join(s.dir, "objects", id[:2], id)
}

func (s *store) partPath(upload string, n int) string {
	return filepath.Join(s.dir, "parts", upload, fmt.Sprintf("%05d", n))
}

// condition is a precondition checked inside the commit transaction, so
// "create only if absent" is atomic under concurrent writers.
type condition struct {
	ifNoneMatchAny bool
	ifMatch        string // quoted etag, or ""
}

func (c condition) check(old *objectMeta) error {
	if c.ifNoneMatchAny && old != nil {
		return ErrPreconditionFailed
	}
	if c.ifMatch != "" && (old == nil || (c.ifMatch != "*" && c.ifMatch != old.ETag)) {
		if old == nil {
			return ErrNoSuchKey
		}
		return ErrPreconditionFailed
	}
	return nil
}

// commitObject makes meta (whose body file is already installed) the
// current version of bucket/key if cond holds, runs extra in the same
// transaction (to queue notifications, drop an upload), and removes the
// previous body. On failure the new body file is removed.
func (s *store) commitObject(bucket, key string, meta objectMeta, cond condition, extra func(tx *bolt.Tx, seq uint64) error) (err error) {
	var oldFile string
	err = s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bktBuckets).Get([]byte(bucket)) == nil {
			return ErrNoSuchBucket
		}
		ob := tx.Bucket(objectsBucketName(bucket))
		var old *objectMeta
		if v := ob.Get([]byte(key)); v != nil {
			old = &objectMeta{}
			if err := json.Unmarshal(v, old); err != nil {
				return fmt.Errorf("decode meta of %q: %w", key, err)
			}
			oldFile = old.File
		}
		if err := cond.check(old); err != nil {
			return err
		}
		v, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		if err := ob.Put([]byte(key), v); err != nil {
			return err
		}
		return afterChange(tx, ob, extra)
	})
	if err != nil {
		_ = os.Remove(s.objectPath(meta.File))
		return err
	}
	if oldFile != "" && oldFile != meta.File {
		_ = os.Remove(s.objectPath(oldFile))
	}
	return nil
}

// afterChange runs extra (if any) after a change to the objects of bucket ob,
// with the next sequence number of that bucket: what orders the
// notifications of one key.
func afterChange(tx *bolt.Tx, ob *bolt.Bucket, extra func(tx *bolt.Tx, seq uint64) error) error {
	seq, err := ob.NextSequence()
	if err != nil || extra == nil {
		return err
	}
	return extra(tx, seq)
}

// deleteObject removes bucket/key; extra runs in the transaction only when
// something was removed.
func (s *store) deleteObject(bucket, key string, extra func(tx *bolt.Tx, seq uint64) error) (bool, error) {
	var oldFile string
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bktBuckets).Get([]byte(bucket)) == nil {
			return ErrNoSuchBucket
		}
		ob := tx.Bucket(objectsBucketName(bucket))
		v := ob.Get([]byte(key))
		if v == nil {
			return nil
		}
		var old objectMeta
		if err := json.Unmarshal(v, &old); err != nil {
			return fmt.Errorf("decode meta of %q: %w", key, err)
		}
		oldFile = old.File
		if err := ob.Delete([]byte(key)); err != nil {
			return err
		}
		return afterChange(tx, ob, extra)
	})
	if err != nil || oldFile == "" {
		return false, err
	}
	_ = os.Remove(s.objectPath(oldFile))
	return true, nil
}

// getObject returns the metadata of bucket/key.
func (s *store) getObject(bucket, key string) (objectMeta, error) {
	var m objectMeta
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bktBuckets).Get([]byte(bucket)) == nil {
			return ErrNoSuchBucket
		}
		v := tx.Bucket(objectsBucketName(bucket)).Get([]byte(key))
		if v == nil {
			return ErrNoSuchKey
		}
		return json.Unmarshal(v, &m)
	})
	return m, err
}

// openObject returns the metadata and an open body of bucket/key. A
// concurrent overwrite may remove the file between lookup and open; the
// lookup is then retried.
func (s *store) openObject(bucket, key string) (objectMeta, *os.File, error) {
	for attempt := 0; ; attempt++ {
		m, err := s.getObject(bucket, key)
		if err != nil {
			return m, nil, err
		}
		f, err := os.Open(s.objectPath(m.File))
		if err == nil {
			return m, f, nil
		}
		if !errors.Is(err, os.ErrNotExist) || attempt == 5 {
			return m, nil, fmt.Errorf("open body of %q: %w", key, err)
		}
	}
}

// bucket operations

func (s *store) createBucket(name string, now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bktBuckets)
		if bb.Get([]byte(name)) != nil {
			return ErrBucketAlreadyOwned
		}
		v, _ := json.Marshal(bucketMeta{Created: now.UTC()})
		if err := bb.Put([]byte(name), v); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(objectsBucketName(name))
		return err
	})
}

func (s *store) deleteBucket(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bktBuckets)
		if bb.Get([]byte(name)) == nil {
			return ErrNoSuchBucket
		}
		if k, _ := tx.Bucket(objectsBucketName(name)).Cursor().First(); k != nil {
			return ErrBucketNotEmpty
		}
		if err := tx.DeleteBucket(objectsBucketName(name)); err != nil {
			return err
		}
		return bb.Delete([]byte(name))
	})
}

func (s *store) getBucket(name string) (bucketMeta, error) {
	var m bucketMeta
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktBuckets).Get([]byte(name))
		if v == nil {
			return ErrNoSuchBucket
		}
		return json.Unmarshal(v, &m)
	})
	return m, err
}

// updateBucket applies fn to the bucket's metadata in one transaction.
func (s *store) updateBucket(name string, fn func(*bucketMeta) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bktBuckets)
		v := bb.Get([]byte(name))
		if v == nil {
			return ErrNoSuchBucket
		}
		var m bucketMeta
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if err := fn(&m); err != nil {
			return err
		}
		nv, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return bb.Put([]byte(name), nv)
	})
}

type bucketEntry struct {
	Name    string
	Created time.Time
}

func (s *store) listBuckets() ([]bucketEntry, error) {
	var out []bucketEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktBuckets).ForEach(func(k, v []byte) error {
			var m bucketMeta
			_ = json.Unmarshal(v, &m)
			out = append(out, bucketEntry{Name: string(k), Created: m.Created})
			return nil
		})
	})
	return out, err
}

// outbox

func putOutbox(tx *bolt.Tx, entries []outboxEntry) error {
	ob := tx.Bucket(bktOutbox)
	for _, e := range entries {
		seq, err := ob.NextSequence()
		if err != nil {
			return err
		}
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		if err := ob.Put(k[:], v); err != nil {
			return err
		}
	}
	return nil
}

type outboxItem struct {
	key   []byte
	entry outboxEntry
}

func (s *store) pendingOutbox(max int) ([]outboxItem, error) {
	var out []outboxItem
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktOutbox).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			var e outboxEntry
			if json.Unmarshal(v, &e) != nil {
				continue
			}
			out = append(out, outboxItem{key: append([]byte(nil), k...), entry: e})
		}
		return nil
	})
	return out, err
}

func (s *store) ackOutbox(key []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktOutbox).Delete(key) })
}
