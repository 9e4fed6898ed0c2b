package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
)

// countingFetch serves body and counts how often it was asked to; gate,
// when not nil, holds every fetch until it is closed.
type countingFetch struct {
	calls atomic.Int32
	body  string
	gate  chan struct{}
}

func (f *countingFetch) fetch(ctx context.Context, w io.Writer) error {
	f.calls.Add(1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_, err := io.WriteString(w, f.body)
	return err
}

func TestInputCacheSharesOneDownload(t *testing.T) {
	c, err := newInputCache(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	f := &countingFetch{body: "input bytes", gate: make(chan struct{})}
	dst := t.TempDir()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.linkTo(context.Background(), "b", "k", `"e1"`, f.fetch, filepath.Join(dst, fmt.Sprint(i)))
		}()
	}
	close(f.gate)
	wg.Wait()
	if got := f.calls.Load(); got != 1 {
		t.Errorf("fetches: got %d, want 1", got)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("linkTo %d: %v", i, errs[i])
		}
		if b, _ := os.ReadFile(filepath.Join(dst, fmt.Sprint(i))); string(b) != f.body {
			t.Errorf("copy %d: got %q, want %q", i, b, f.body)
		}
	}
	// Another ETag is another version: fetched again.
	if hit, err := c.linkTo(context.Background(), "b", "k", `"e2"`, f.fetch, filepath.Join(dst, "v2")); err != nil || hit {
		t.Fatalf("new etag: hit %v, err %v; want a miss", hit, err)
	}
	if got := f.calls.Load(); got != 2 {
		t.Errorf("fetches after a new etag: got %d, want 2", got)
	}
}

func TestInputCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c, err := newInputCache(t.TempDir(), 16) // keeps inputs up to 4 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	dst := t.TempDir()
	n := 0
	get := func(key string) bool {
		t.Helper()
		n++
		f := &countingFetch{body: "1234"}
		hit, err := c.linkTo(context.Background(), "b", key, "e", f.fetch, filepath.Join(dst, fmt.Sprint(n)))
		if err != nil {
			t.Fatal(err)
		}
		return hit
	}
	tests := []struct {
		key  string
		want bool
	}{
		{"a", false}, {"b", false}, {"a", true}, // a is now the most recent
		{"c", false}, {"d", false}, // 16 bytes: all kept
		{"e", false},              // 20 bytes > 16: b goes
		{"a", true}, {"b", false}, // b was evicted; c goes
		{"d", true}, {"c", false},
	}
	for i, tt := range tests {
		if got := get(tt.key); got != tt.want {
			t.Errorf("step %d get(%s): hit %v, want %v", i, tt.key, got, tt.want)
		}
	}
	if c.bytes > c.maxBytes {
		t.Errorf("cache holds %d bytes, limit %d", c.bytes, c.maxBytes)
	}
	// The caller's links outlive eviction.
	entries, _ := os.ReadDir(dst)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dst, e.Name())); err != nil || string(b) != "1234" {
			t.Errorf("%s: %q, %v", e.Name(), b, err)
		}
	}
}

// TestInputCacheSharesLargeInputWhileLinked: an input larger than a
// quarter of the cache is downloaded once for the steps that use it
// together, is not counted against the cache's bound, and is removed by
// sweep once no work dir links it.
func TestInputCacheSharesLargeInputWhileLinked(t *testing.T) {
	c, err := newInputCache(t.TempDir(), 16) // keeps inputs up to 4 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	f := &countingFetch{body: "ten bytes!", gate: make(chan struct{})}
	dst := t.TempDir()
	link := func(name string) bool {
		t.Helper()
		hit, err := c.linkTo(context.Background(), "b", "big", "e", f.fetch, filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		return hit
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { link(fmt.Sprint(i)) })
	}
	close(f.gate)
	wg.Wait()
	if !link("later") {
		t.Error("a step starting while others still link the input downloaded it again")
	}
	if got := f.calls.Load(); got != 1 {
		t.Errorf("fetches while linked: got %d, want 1", got)
	}
	if c.bytes != 0 {
		t.Errorf("cache counts %d bytes for an input it does not keep", c.bytes)
	}
	c.sweep()
	if got := cacheFiles(t, c); got != 1 {
		t.Fatalf("sweep while work dirs link the input: %d files in the cache, want 1", got)
	}
	for _, name := range []string{"0", "1", "2", "later"} {
		if err := os.Remove(filepath.Join(dst, name)); err != nil {
			t.Fatal(err)
		}
	}
	c.sweep()
	if got := cacheFiles(t, c); got != 0 {
		t.Errorf("sweep after the last work dir: %d files in the cache, want 0", got)
	}
	if link("again") {
		t.Error("a swept input was served from the cache")
	}
	if got := f.calls.Load(); got != 2 {
		t.Errorf("fetches after the sweep: got %d, want 2", got)
	}
}

func cacheFiles(t *testing.T, c *inputCache) int {
	t.Helper()
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestInputCacheFailedDownloadIsNotKept(t *testing.T) {
	c, err := newInputCache(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	boom := errors.New("boom")
	dst := t.TempDir()
	_, err = c.linkTo(context.Background(), "b", "k", "e", func(context.Context, io.Writer) error { return boom }, filepath.Join(dst, "1"))
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	f := &countingFetch{body: "ok"}
	if _, err := c.linkTo(context.Background(), "b", "k", "e", f.fetch, filepath.Join(dst, "2")); err != nil || f.calls.Load() != 1 {
		t.Fatalf("retry after a failure: err %v, fetches %d; want a new download", err, f.calls.Load())
	}
	left, _ := os.ReadDir(c.dir)
	if len(left) != 1 {
		t.Errorf("cache dir holds %d files, want 1", len(left))
	}
}

func TestInputCacheCloseRemovesDir(t *testing.T) {
	c, err := newInputCache(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	f := &countingFetch{body: strings.Repeat("x", 100)}
	if _, err := c.linkTo(context.Background(), "b", "k", "e", f.fetch, filepath.Join(t.TempDir(), "in")); err != nil {
		t.Fatal(err)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cache dir after close: %v, want it gone", err)
	}
	if _, err := c.linkTo(context.Background(), "b", "k", "e", f.fetch, filepath.Join(t.TempDir(), "in")); err == nil {
		t.Error("linkTo after close succeeded")
	}
}

// TestOutputStepsShareOneDownload: the four output steps of an image job
// in one processor fetch the input from S3 once — also an input too large
// to keep in the cache, which the steps share while they run — and nothing
// is left in the work dir once the processor stops.
func TestOutputStepsShareOneDownload(t *testing.T) {
	tests := []struct {
		name       string
		cacheBytes int64
		most       int // downloads
	}{
		{"kept in the cache", 0, 1},
		// Shared while a step links it: the job's four steps start
		// together (four workers), so one download is usual; a step
		// received after the others ended would fetch it again.
		{"larger than a quarter of the cache", 4 << 10, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			e := newEnv(t, func(c *Config) { c.WorkDir, c.InputCacheBytes = work, tt.cacheBytes })
			id := e.upload(t, "photo.png", "image/png", testkit.ReadFile(t, testkit.NoiseImage(t, t.TempDir(), "photo.png", 640, 480)))
			final, _ := e.events.final(t, id, 60*time.Second)
			if final.Type != event.TypeCompleted {
				t.Fatalf("final event %s (%+v), want job.completed", final.Type, final.Error)
			}
			stored := e.logs.Matching(func(r map[string]any) bool { return r["msg"] == "output stored" && r["job"] == id })
			var downloads int
			for _, r := range stored {
				if r["input_cached"] == false {
					downloads++
				}
			}
			if len(stored) != 4 || downloads < 1 || downloads > tt.most {
				t.Errorf("got %d outputs stored with %d downloads, want 4 and 1 to %d", len(stored), downloads, tt.most)
			}
			t.Logf("%d outputs, %d download(s) of the input", len(stored), downloads)
			e.stop()
			if left, _ := os.ReadDir(work); len(left) != 0 {
				t.Errorf("work dir holds %d entries after stop, want none: %v", len(left), left)
			}
		})
	}
}
