package revocation

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/heraldgw/herald/tenant"
)

// SweepInterval is how often Run drops records that have ended.
const SweepInterval = time.Minute

// Store is the durable set of revoked channels. It is safe for concurrent
// use. The file holds one JSON record per line; Revoke appends and fsyncs
// before it returns, and the file is rewritten without ended records when
// opened and whenever it has grown to twice the live set.
type Store struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	m      map[string]time.Time // app/channel → until
	f      *os.File             // nil when memory only
	lines  int                  // records in the file
	closed bool
}

// ErrClosed is returned by Revoke after Close: nothing could be recorded
// durably any more.
var ErrClosed = errors.New("revocations: store closed")

var _ tenant.Revocations = (*Store)(nil)

// Open loads the store at path, creating it if needed. An empty path keeps
// the set in memory only. A line that does not parse (a write torn by a
// crash) is skipped and logged; nothing after it is lost.
func Open(path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, log: log, m: map[string]time.Time{}}
	if path == "" {
		return s, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	bad := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		r, err := Parse(sc.Bytes())
		if err != nil {
			bad++
			continue
		}
		s.add(r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("revocations %s: %w", path, err)
	}
	if bad > 0 {
		log.Warn("revocations: unreadable lines skipped", "file", path, "lines", bad)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.rewrite(time.Now()); err != nil {
		return nil, err
	}
	return s, nil
}

func key(app, channel string) string { return app + "/" + channel }

// add keeps the later end of r and what is known; it reports whether r
// extends the set. s.mu is held or s is not shared yet.
func (s *Store) add(r Record) bool {
	k := key(r.App, r.Channel)
	if until, ok := s.m[k]; ok && !r.Until.After(until) {
		return false
	}
	s.m[k] = r.Until
	return true
}

// Revoke records r durably. It reports false, writing nothing, when the
// channel is already revoked at least until r.Until.
func (s *Store) Revoke(r Record) (bool, error) {
	if err := r.Validate(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	if !s.add(r) {
		return false, nil
	}
	if s.f == nil {
		return true, nil
	}
	line := append(r.Encode(), '\n')
	if _, err := s.f.Write(line); err != nil {
		return true, fmt.Errorf("revocations: write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return true, fmt.Errorf("revocations: sync: %w", err)
	}
	s.lines++
	if s.lines > 2*len(s.m)+1024 {
		if err := s.rewrite(time.Now()); err != nil {
			s.log.Warn("revocations: compaction failed", "file", s.path, "error", err)
		}
	}
	return true, nil
}

// Revoked reports whether channel of app is revoked at now.
func (s *Store) Revoked(app, channel string, now time.Time) bool {
	s.mu.Lock()
	until, ok := s.m[key(app, channel)]
	s.mu.Unlock()
	return ok && now.Before(until)
}

// Len is the number of records held (some may have ended since the last
// sweep).
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Sweep drops the records that ended before now, from memory and, when
// any did, from the file.
func (s *Store) Sweep(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.m)
	for k, until := range s.m {
		if !now.Before(until) {
			delete(s.m, k)
		}
	}
	if len(s.m) == n {
		return nil
	}
	return s.rewrite(now)
}

// Run sweeps every SweepInterval until ctx ends, then closes the file.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.Close()
		case now := <-t.C:
			if err := s.Sweep(now); err != nil {
				s.log.Warn("revocations: sweep failed", "file", s.path, "error", err)
			}
		}
	}
}

// Close closes the file. Revoked keeps answering; Revoke fails.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// rewrite replaces the file with the live records (write, fsync, rename,
// fsync the directory) and reopens it for appending. s.mu is held.
func (s *Store) rewrite(now time.Time) error {
	if s.path == "" {
		return nil
	}
	var buf bytes.Buffer
	n := 0
	for k, until := range s.m {
		if !now.Before(until) {
			delete(s.m, k)
			continue
		}
		app, ch := splitKey(k)
		buf.Write(Record{App: app, Channel: ch, Until: until}.Encode())
		buf.WriteByte('\n')
		n++
	}
	tmp := s.path + ".tmp"
	if err := writeSync(tmp, buf.Bytes()); err != nil {
		return fmt.Errorf("revocations: %w", err)
	}
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("revocations: %w", err)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("revocations: %w", err)
	}
	s.f, s.lines = f, n
	return nil
}

func splitKey(k string) (app, channel string) {
	// A channel id never contains '/', an app id neither.
	i := len(k) - tenant.ChannelIDLen - 1
	return k[:i], k[i+1:]
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, bytes.NewReader(b)); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
