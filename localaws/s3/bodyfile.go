package s3

import (
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// A body on its way into the store: streamed to a temp file and fsynced,
// then renamed into objects/ before its metadata is committed.

// errTooLarge is returned by receive when the body exceeds its limit.
var errTooLarge = errors.New("body exceeds size limit")

// received is a body fully written and fsynced to a temp file.
type received struct {
	path string
	size int64
	md5  []byte
}

func (r *received) discard() {
	if r != nil && r.path != "" {
		_ = os.Remove(r.path)
	}
}

// receive streams body into a temp file (fsynced), computing its MD5. A
// read error (including a failed signature or checksum check at EOF)
// discards the file. limit < 0 means no limit.
func (s *store) receive(body io.Reader, limit int64) (*received, error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "put-")
	if err != nil {
		return nil, fmt.Errorf("create temp body: %w", err)
	}
	rc := &received{path: f.Name()}
	h := md5.New()
	src := body
	if limit >= 0 {
		src = io.LimitReader(body, limit+1)
	}
	n, err := io.CopyBuffer(io.MultiWriter(f, h), src, make([]byte, 256<<10))
	if err == nil && limit >= 0 && n > limit {
		err = errTooLarge
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		rc.discard()
		return nil, err
	}
	rc.size, rc.md5 = n, h.Sum(nil)
	return rc, nil
}

// install renames a received body to its final place and fsyncs the
// directory, returning the file id.
func (s *store) install(rc *received) (string, error) {
	id := newID()
	dir := filepath.Join(s.dir, "objects", id[:2])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create object dir: %w", err)
	}
	if err := os.Rename(rc.path, s.objectPath(id)); err != nil {
		return "", fmt.Errorf("install object body: %w", err)
	}
	rc.path = ""
	syncDir(dir)
	return id, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
