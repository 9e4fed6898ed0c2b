package processor

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// inputCache keeps recently downloaded inputs on local disk so that the
// output steps of one job that run in the same process share one download
// instead of each fetching the object again. Entries are keyed by bucket,
// key and ETag, so a replaced object is never served stale; concurrent
// requests for the same entry wait for one download. The total size is
// bounded (least recently used entries go first) and the directory is
// removed by close.
//
// An input larger than a quarter of the bound is not kept: it would evict
// most of the cache for one job. It is shared only while some step's work
// dir links it (a hard link costs no space), so the steps of a job that run
// together still download it once; sweep removes it after the last.
//
// Callers get a hard link to the cached file in their own work dir, so an
// eviction never pulls a file from under a running converter and removing
// the work dir removes only the caller's link.
type inputCache struct {
	dir      string
	maxBytes int64

	mu      sync.Mutex
	entries map[string]*cacheEntry
	lru     *list.List             // of *cacheEntry, most recent at the front; ready entries only
	bytes   int64                  // sum of the sizes of ready entries in lru
	shared  map[string]*cacheEntry // ready entries too large to keep
	closed  bool
}

type cacheEntry struct {
	id    string
	path  string
	size  int64
	ready chan struct{} // closed when the download ended
	err   error         // the download's error, set before ready closes
	elem  *list.Element // nil until ready and kept
	users int           // linkTo calls between finding the entry and linking it
}

// fetchFunc writes the object's bytes to w.
type fetchFunc func(ctx context.Context, w io.Writer) error

// newInputCache creates the cache's directory under parent (the system
// temp dir when empty).
func newInputCache(parent string, maxBytes int64) (*inputCache, error) {
	dir, err := os.MkdirTemp(parent, "herald-inputs-*")
	if err != nil {
		return nil, fmt.Errorf("create input cache dir: %w", err)
	}
	return &inputCache{dir: dir, maxBytes: maxBytes, entries: map[string]*cacheEntry{},
		shared: map[string]*cacheEntry{}, lru: list.New()}, nil
}

// fits reports whether an object of size bytes may be kept in the cache
// after the steps using it are done.
func (c *inputCache) fits(size int64) bool { return size > 0 && size <= c.maxBytes/4 }

// linkTo places the cached copy of bucket/key at ETag etag (fetching it
// with fetch if nobody has) at dst. hit reports that no download was
// needed by this call.
func (c *inputCache) linkTo(ctx context.Context, bucket, key, etag string, fetch fetchFunc, dst string) (hit bool, err error) {
	id := cacheID(bucket, key, etag)
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return false, errors.New("input cache closed")
		}
		e, found := c.entries[id]
		if !found {
			e = &cacheEntry{id: id, path: filepath.Join(c.dir, id), ready: make(chan struct{})}
			c.entries[id] = e
		}
		e.users++ // sweep leaves it alone until it is linked
		c.mu.Unlock()
		hit, retry, err := c.use(ctx, e, found, fetch, dst)
		c.mu.Lock()
		e.users--
		c.mu.Unlock()
		if !retry || attempt > 0 {
			return hit, err
		}
	}
}

// use links the entry to dst: at once if found (after the download
// another call runs), else after downloading it. retry reports an error
// that a second try may not have: the entry was evicted before it was
// linked, or the download another step started was canceled.
func (c *inputCache) use(ctx context.Context, e *cacheEntry, found bool, fetch fetchFunc, dst string) (hit, retry bool, err error) {
	if !found {
		c.download(ctx, e, fetch)
		if e.err != nil {
			return false, false, e.err
		}
		err := c.link(e, dst)
		return false, errors.Is(err, errEvicted), err
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return false, false, fmt.Errorf("wait for input download: %w", ctx.Err())
	}
	if e.err != nil {
		return false, errors.Is(e.err, context.Canceled), e.err
	}
	err = c.link(e, dst)
	return err == nil, errors.Is(err, errEvicted), err
}

var errEvicted = errors.New("input cache entry evicted")

// download runs fetch into the entry's file and publishes the result.
func (c *inputCache) download(ctx context.Context, e *cacheEntry, fetch fetchFunc) {
	size, err := writeFile(ctx, e.path, fetch)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(e.ready)
	if err == nil && c.closed {
		err = errors.New("input cache closed")
	}
	if err != nil {
		_ = os.Remove(e.path)
		e.err = err
		delete(c.entries, e.id)
		return
	}
	e.size = size
	if !c.fits(size) {
		c.shared[e.id] = e
		return
	}
	e.elem = c.lru.PushFront(e)
	c.bytes += size
	c.evictLocked()
}

// link hard-links the entry's file to dst (copying when the two are on
// different file systems) and marks the entry recently used.
func (c *inputCache) link(e *cacheEntry, dst string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.id] != e {
		return errEvicted
	}
	if e.elem != nil {
		c.lru.MoveToFront(e.elem)
	}
	if err := os.Link(e.path, dst); err == nil {
		return nil
	}
	return copyFile(e.path, dst)
}

// evictLocked drops least recently used entries until the cache fits.
func (c *inputCache) evictLocked() {
	for c.bytes > c.maxBytes {
		back := c.lru.Back()
		if back == nil {
			return
		}
		e := back.Value.(*cacheEntry)
		c.lru.Remove(back)
		delete(c.entries, e.id)
		c.bytes -= e.size
		_ = os.Remove(e.path)
	}
}

// sweep removes the shared entries (those too large to keep) that no
// call is about to link and no work dir links any more. The processor
// calls it when a step's work dir is gone.
func (c *inputCache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.shared {
		if e.users > 0 || linked(e.path) {
			continue
		}
		delete(c.shared, id)
		delete(c.entries, id)
		_ = os.Remove(e.path)
	}
}

// linked reports whether path has other hard links than its own name.
func linked(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink > 1
}

// close removes the cache directory. Downloads still running fail.
func (c *inputCache) close() error {
	c.mu.Lock()
	c.closed = true
	c.entries = map[string]*cacheEntry{}
	c.shared = map[string]*cacheEntry{}
	c.lru.Init()
	c.bytes = 0
	c.mu.Unlock()
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("remove input cache %s: %w", c.dir, err)
	}
	return nil
}

// cacheID is a file name for (bucket, key, ETag): the key is the
// uploader's, so it never becomes part of a path.
func cacheID(bucket, key, etag string) string {
	h := sha256.New()
	for _, s := range []string{bucket, key, etag} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeFile creates path (which must not exist), fills it with fetch and
// makes it read-only. It returns the size written.
func writeFile(ctx context.Context, path string, fetch fetchFunc) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create input file: %w", err)
	}
	cw := &countWriter{w: f}
	err = fetch(ctx, cw)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write input file: %w", cerr)
	}
	if err == nil {
		err = os.Chmod(path, 0o400)
	}
	if err != nil {
		_ = os.Remove(path)
		return 0, err
	}
	return cw.n, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy cached input: %w", err)
	}
	defer in.Close()
	_, err = writeFile(context.Background(), dst, func(_ context.Context, w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
	return err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
