package broker

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
)

// Defaults for the storage compaction settings.
const (
	DefaultCompactMinFree  = 16 << 20
	DefaultCompactInterval = time.Minute
)

// compaction is when the storage file is rewritten without its free pages.
// bbolt reuses freed pages but never gives them back to the file system,
// so without this a file that once held a burst of retained messages or
// queued events keeps its size for ever.
type compaction struct {
	// minFree: the free pages must come to at least this many bytes,
	// and to at least half the file; negative: never compact.
	minFree int64
	// every is how often the writer looks (free pages are counted in
	// memory, so looking costs nothing).
	every time.Duration
}

func openDB(path string) (*bbolt.DB, error) {
	return bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true})
}

// freeBytes is the size of the free pages and of the file.
func (s *store) freeBytes() (free, size int64) {
	st := s.db.Stats()
	free = int64(st.FreePageN+st.PendingPageN) * int64(s.db.Info().PageSize)
	if fi, err := os.Stat(s.db.Path()); err == nil {
		size = fi.Size()
	}
	return free, size
}

// maybeCompact compacts the file when its free pages are worth it. It runs
// on the writer goroutine (or before it starts), so no write can happen
// meanwhile, and only once the broker has restored its state, so no read
// does either.
func (s *store) maybeCompact() {
	if s.compact.minFree < 0 || !s.started.Load() || s.health() != nil {
		return
	}
	free, size := s.freeBytes()
	s.fileBytes.Set(float64(size))
	if free < s.compact.minFree || 2*free < size {
		return
	}
	start := time.Now()
	if err := s.compactFile(); err != nil {
		s.log.Warn("broker storage not compacted", "file_bytes", size, "free_bytes", free, "error", err)
		return
	}
	_, after := s.freeBytes()
	s.fileBytes.Set(float64(after))
	s.compactions.Inc()
	s.log.Info("broker storage compacted", "before_bytes", size, "after_bytes", after,
		"took", time.Since(start).Round(time.Millisecond).String())
}

// compactFile copies the live data into a new file, which then replaces
// the old one. If anything fails before the swap the old file stays in
// use; after it, the file at the path (old or new) is reopened.
func (s *store) compactFile() error {
	path := s.db.Path()
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, NoSync: true})
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	err = bbolt.Compact(dst, s.db, 32<<20)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("copy into %s: %w", tmp, err)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	swapErr := os.Rename(tmp, path)
	if swapErr == nil {
		swapErr = syncDir(filepath.Dir(path))
	}
	db, err := openDB(path)
	if err != nil {
		// Nothing to write to: commits fail, and the broker refuses new
		// messages and reports not ready, as on a full disk.
		return fmt.Errorf("reopen %s after compaction: %w", path, err)
	}
	s.db = db
	return swapErr
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// compactionMetrics makes the storage file's size and compaction metrics.
func (s *store) compactionMetrics() {
	s.fileBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_broker_storage_file_bytes",
		Help: "Size of the broker's storage file (broker.db), as of the writer's last look or compaction.",
	})
	s.compactions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_broker_storage_compactions_total",
		Help: "Times the broker's storage file was rewritten without its free pages.",
	})
}

func (s *store) registerCompaction(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{s.fileBytes, s.compactions} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
