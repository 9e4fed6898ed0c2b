package broker

import (
	"encoding/binary"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
)

// bucketEnded holds, for each stored persistent session whose client is
// gone, when it disconnected (unix seconds). mochi restores a session as
// if its client had just left, so without this a session that expired
// while the broker was down, or across frequent restarts, would never be
// reclaimed.
var bucketEnded = []byte("ended")

func (s *store) markEnded(client string, at time.Time) {
	s.enqueue(storeOp{bucket: bucketEnded, key: []byte(client), val: binary.BigEndian.AppendUint64(nil, uint64(at.Unix()))})
}

// expired reports whether the stored session c ended longer ago than its
// session expiry (capped to the broker's), by the times in ended.
func (s *store) expired(c storage.Client, ended map[string]int64, now time.Time) bool {
	at, ok := ended[c.ID]
	if !ok {
		return false
	}
	expiry := s.maxSessionExpiry
	if c.ProtocolVersion == 5 && c.Properties.SessionExpiryIntervalFlag {
		expiry = min(expiry, time.Duration(c.Properties.SessionExpiryInterval)*time.Second)
	}
	return time.Unix(at, 0).Add(expiry).Before(now)
}

// endedTimes reads bucketEnded.
func (s *store) endedTimes() (map[string]int64, error) {
	out := map[string]int64{}
	err := s.scan(bucketEnded, func(k, v []byte) error {
		if len(v) == 8 {
			out[string(k)] = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return out, err
}
