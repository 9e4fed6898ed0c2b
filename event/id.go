package event

import (
	"crypto/sha256"
	"encoding/base64"
)

// StableID derives an event id from what identifies the event (job, step,
// type), so a retried step republishes the same id and clients dedupe it.
func StableID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "evt_" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:15])
}
