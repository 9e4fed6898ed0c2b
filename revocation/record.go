// Package revocation keeps the channels whose browser sessions were
// revoked (DELETE /v1/sessions/{channel}): every token of such a channel is
// refused until the last one it could have had would expire. The set is
// durable (an append-only file, fsynced before a revocation is
// acknowledged) and its records travel between gateway replicas as
// retained MQTT messages on TopicPrefix.
package revocation

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

// TopicPrefix starts the topic of every revocation record on a shared
// broker: herald/revocations/{app}/{channel}.
const TopicPrefix = "herald/revocations/"

// ErrInvalid is returned (wrapped) for a record that is not one.
var ErrInvalid = errors.New("invalid revocation record")

// Record revokes a channel of an app until a time: the moment every token
// the channel may hold has expired.
type Record struct {
	App     string    `json:"app"`
	Channel string    `json:"channel"`
	Until   time.Time `json:"until"`
}

// Topic is where the record is shared.
func (r Record) Topic() string { return TopicPrefix + r.App + "/" + r.Channel }

// Validate checks the record's fields.
func (r Record) Validate() error {
	switch {
	case !topic.ValidSegment(r.App):
		return fmt.Errorf("app %q: %w", r.App, ErrInvalid)
	case !tenant.ValidChannelID(r.Channel):
		return fmt.Errorf("channel %q: %w", r.Channel, ErrInvalid)
	case r.Until.IsZero():
		return fmt.Errorf("channel %s: no end time: %w", r.Channel, ErrInvalid)
	}
	return nil
}

// Encode returns the record as one line of JSON (no newline).
func (r Record) Encode() []byte {
	b, _ := json.Marshal(r) // strings and a time: cannot fail
	return b
}

// Parse reads a record from untrusted bytes (a file line, an MQTT
// payload) and validates it.
func Parse(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	r.Until = r.Until.UTC()
	return r, r.Validate()
}

// ParseTopic parses a record received on topic name: the topic must name
// the record's own app and channel.
func ParseTopic(name string, payload []byte) (Record, error) {
	r, err := Parse(payload)
	if err != nil {
		return Record{}, err
	}
	if name != r.Topic() {
		return Record{}, fmt.Errorf("record for %s/%s on topic %q: %w", r.App, r.Channel, name, ErrInvalid)
	}
	return r, nil
}
