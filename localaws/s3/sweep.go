package s3

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultAbortIncompleteAfter is how long a multipart upload may stay
// incomplete before localaws aborts it, as an S3 lifecycle rule
// AbortIncompleteMultipartUpload with DaysAfterInitiation 1 does.
const DefaultAbortIncompleteAfter = 24 * time.Hour

// sweepEvery is how often incomplete uploads are looked at: a tenth of
// the age they may reach, between a second and ten minutes.
func (s *Service) sweepEvery() time.Duration {
	return min(max(s.cfg.AbortIncompleteAfter/10, time.Second), 10*time.Minute)
}

// sweepUploads aborts the multipart uploads initiated longer than
// AbortIncompleteAfter ago and frees their parts; a browser that went away
// mid-upload leaves them behind otherwise.
func (s *Service) sweepUploads() {
	if s.cfg.AbortIncompleteAfter < 0 {
		return
	}
	cutoff := s.now().Add(-s.cfg.AbortIncompleteAfter)
	type stale struct {
		id string
		u  uploadMeta
	}
	var found []stale
	err := s.store.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktUploads).ForEach(func(k, v []byte) error {
			var u uploadMeta
			if json.Unmarshal(v, &u) == nil && u.Initiated.Before(cutoff) {
				found = append(found, stale{string(k), u})
			}
			return nil
		})
	})
	if err != nil {
		s.log.Warn("sweep of incomplete multipart uploads failed", "err", err)
		return
	}
	for _, st := range found {
		err := s.store.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktUploads).Delete([]byte(st.id)) })
		if err != nil {
			s.log.Warn("abort of an incomplete multipart upload failed", "upload", st.id, "err", err)
			continue
		}
		_ = os.RemoveAll(filepath.Join(s.store.dir, "parts", st.id))
		s.metrics.aborted.WithLabelValues(abortExpired).Inc()
		s.log.Info("incomplete multipart upload aborted", "bucket", st.u.Bucket, "key", st.u.Key, "upload", st.id,
			"initiated", st.u.Initiated, "parts", len(st.u.Parts))
	}
}
