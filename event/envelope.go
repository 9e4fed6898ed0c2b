// Package event defines the job event envelope of docs/design.md and validates
// envelopes that arrive from outside (POST /v1/events, service MQTT).
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/heraldgw/herald/topic"
)

// Version is the envelope version this gateway speaks.
const Version = 1

// MaxBytes is the largest encoded envelope accepted; it stays under AWS IoT
// Core's 128 KB payload limit so any envelope can travel any broker.
const MaxBytes = 120 << 10

// FinalExpiry is how long a final (retained) job event stays retained.
const FinalExpiry = 24 * time.Hour

// The event types of docs/design.md. Services may add their own with an "x." prefix.
const (
	TypeAccepted  = "job.accepted"
	TypeProgress  = "job.progress"
	TypeCompleted = "job.completed"
	TypeFailed    = "job.failed"
)

// ErrInvalid is returned (wrapped) for an envelope that breaks the contract.
var ErrInvalid = errors.New("invalid event")

// Envelope is one event for one browser channel.
type Envelope struct {
	V        int             `json:"v"`
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	JobID    string          `json:"jobId,omitempty"`
	App      string          `json:"app"`
	Channel  string          `json:"channel"`
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	Input    *Object         `json:"input,omitempty"`
	Outputs  []Output        `json:"outputs,omitempty"`
	Progress *Progress       `json:"progress,omitempty"`
	Error    *Error          `json:"error,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// Object names the input object of a job.
type Object struct {
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	ContentType string `json:"contentType,omitempty"`
}

// Output is one converted file of a job.
type Output struct {
	Name        string  `json:"name"`
	Key         string  `json:"key"`
	URL         string  `json:"url,omitempty"`
	ContentType string  `json:"contentType"`
	Width       int     `json:"width,omitempty"`
	Height      int     `json:"height,omitempty"`
	Duration    float64 `json:"duration,omitempty"` // seconds
	Bytes       int64   `json:"bytes"`
}

// Progress counts the finished steps of a job.
type Progress struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// Error tells why a job failed.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// IsJob reports whether the event belongs to a job (type "job.*").
func (e *Envelope) IsJob() bool { return strings.HasPrefix(e.Type, "job.") }

// Final reports whether the event ends its job; final events are retained.
func (e *Envelope) Final() bool { return e.Type == TypeCompleted || e.Type == TypeFailed }

// Topic is where the event is published.
func (e *Envelope) Topic() string {
	if e.JobID != "" {
		return topic.Job(e.App, e.Channel, e.JobID)
	}
	return topic.Events(e.App, e.Channel)
}

// Validate checks the envelope against the contract. The error names the
// first field that is wrong.
func (e *Envelope) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrInvalid)
	}
	switch {
	case e.V != Version:
		return bad("v must be %d, got %d", Version, e.V)
	case !validType(e.Type):
		return bad("type %q: want job.accepted|job.progress|job.completed|job.failed or x.<name>", e.Type)
	case e.ID == "" || len(e.ID) > 128 || !printable(e.ID):
		return bad("id must be 1-128 printable characters")
	case !topic.ValidSegment(e.App):
		return bad("app %q is not a valid app id", e.App)
	case !topic.ValidSegment(e.Channel):
		return bad("channel %q is not a valid channel id", e.Channel)
	case e.JobID != "" && !topic.ValidSegment(e.JobID):
		return bad("jobId %q must be 1-64 of [A-Za-z0-9_.-]", e.JobID)
	case e.IsJob() && e.JobID == "":
		return bad("jobId is required for %s", e.Type)
	case e.Seq < 0:
		return bad("seq must not be negative")
	case e.Time.IsZero():
		return bad("time is required (RFC 3339)")
	case e.Type == TypeFailed && (e.Error == nil || e.Error.Code == ""):
		return bad("job.failed needs error.code")
	case e.Progress != nil && (e.Progress.Done < 0 || e.Progress.Total < 0 || e.Progress.Done > e.Progress.Total):
		return bad("progress must satisfy 0 <= done <= total")
	case len(e.Outputs) > 64:
		return bad("at most 64 outputs")
	}
	for i, o := range e.Outputs {
		if o.Name == "" || o.Key == "" {
			return bad("outputs[%d] needs name and key", i)
		}
	}
	return topic.ValidName(e.Topic())
}

// Encode marshals the envelope and checks its size.
func (e *Envelope) Encode() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("event %s is %d bytes, limit %d: %w", e.ID, len(b), MaxBytes, ErrInvalid)
	}
	return b, nil
}

// DecodeForApp reads an envelope sent by a service of app (POST /v1/events).
// Unknown fields are refused so typos surface as errors; "app" may be absent
// (the caller's credentials decide it) but if present must equal app. A
// missing time is set to now.
func DecodeForApp(r io.Reader, app string, now time.Time) (*Envelope, error) {
	dec := json.NewDecoder(io.LimitReader(r, MaxBytes+1))
	dec.DisallowUnknownFields()
	var e Envelope
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("decode event: %w: %w", err, ErrInvalid)
	}
	// More() misses a trailing '}' or ']'; only the end of the body will do.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("another JSON value")
		}
		// err stays in the chain: a body over its size limit is that, not bad JSON.
		return nil, fmt.Errorf("decode event: trailing data after the JSON object: %w: %w", err, ErrInvalid)
	}
	if e.App != "" && e.App != app {
		return nil, fmt.Errorf("event app %q does not match the credentials' app %q: %w", e.App, app, ErrInvalid)
	}
	e.App = app
	if e.Time.IsZero() {
		e.Time = now.UTC()
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

func validType(t string) bool {
	switch t {
	case TypeAccepted, TypeProgress, TypeCompleted, TypeFailed:
		return true
	}
	name, ok := strings.CutPrefix(t, "x.")
	if !ok || name == "" || len(t) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	return !bytes.ContainsFunc([]byte(s), func(r rune) bool { return r < 0x21 || r == 0x7f })
}
