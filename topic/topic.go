// Package topic builds, parses and authorises the MQTT topics of docs/design.md:
//
//	apps/{app}/channels/{channel}/jobs/{jobId}
//	apps/{app}/channels/{channel}/events
//
// Every check compares filters level by level. A generic "does this filter
// match that rule" matcher is deliberately not used: treating the rule as a
// filter lets "a/+" accept "a/#" and "#" accept "$SYS/…", which is exactly the
// over-matching an ACL must not do.
package topic

import (
	"errors"
	"fmt"
	"strings"
)

// MaxBytes is the longest topic accepted (AWS IoT Core's limit).
const MaxBytes = 256

// MaxSlashes is the most '/' separators a topic may have (AWS IoT Core's limit).
const MaxSlashes = 7

// ErrInvalid is returned (wrapped) for a topic or filter that is not well formed.
var ErrInvalid = errors.New("invalid topic")

// Kind says which branch of a channel a topic addresses.
type Kind int

// The kinds of channel topic.
const (
	KindJob Kind = iota + 1
	KindEvents
)

// Address is a parsed channel topic.
type Address struct {
	App     string
	Channel string
	Kind    Kind
	JobID   string // set for KindJob
}

// String renders the address back into its topic.
func (a Address) String() string {
	if a.Kind == KindJob {
		return Job(a.App, a.Channel, a.JobID)
	}
	return Events(a.App, a.Channel)
}

// Job is the topic for events of one job on one channel.
func Job(app, channel, jobID string) string {
	return "apps/" + app + "/channels/" + channel + "/jobs/" + jobID
}

// Events is the topic for non-job events of one channel.
func Events(app, channel string) string {
	return "apps/" + app + "/channels/" + channel + "/events"
}

// ChannelFilter is the widest filter a browser may subscribe to.
func ChannelFilter(app, channel string) string {
	return "apps/" + app + "/channels/" + channel + "/#"
}

// AppFilter is the widest filter a service of app may use.
func AppFilter(app string) string { return "apps/" + app + "/#" }

// ValidSegment reports whether s may be used as an app id, channel id or job
// id inside a topic: non-empty, at most 64 bytes of [A-Za-z0-9_.-]. Wildcards,
// separators and '$' can never appear, so a built topic is always a plain name.
func ValidSegment(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// Parse splits a channel topic name into its parts. It rejects wildcards,
// filters, and anything outside the two shapes of docs/design.md.
func Parse(name string) (Address, error) {
	if err := ValidName(name); err != nil {
		return Address{}, err
	}
	lv := strings.Split(name, "/")
	if len(lv) < 5 || lv[0] != "apps" || lv[2] != "channels" {
		return Address{}, fmt.Errorf("topic %q: not a channel topic: %w", name, ErrInvalid)
	}
	a := Address{App: lv[1], Channel: lv[3]}
	if !ValidSegment(a.App) || !ValidSegment(a.Channel) {
		return Address{}, fmt.Errorf("topic %q: bad app or channel: %w", name, ErrInvalid)
	}
	switch {
	case len(lv) == 5 && lv[4] == "events":
		a.Kind = KindEvents
	case len(lv) == 6 && lv[4] == "jobs" && ValidSegment(lv[5]):
		a.Kind, a.JobID = KindJob, lv[5]
	default:
		return Address{}, fmt.Errorf("topic %q: unknown channel branch: %w", name, ErrInvalid)
	}
	return a, nil
}

// ValidName checks a topic name for publishing: non-empty, no wildcards, no
// NUL, no leading '$', within AWS IoT Core's length and depth limits.
func ValidName(name string) error {
	if err := checkCommon(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, "+#") {
		return fmt.Errorf("topic %q: wildcard in a topic name: %w", name, ErrInvalid)
	}
	return nil
}

// ValidFilter checks a subscription filter: '#' only as the whole last level,
// '+' only as a whole level, and the limits of ValidName.
func ValidFilter(filter string) error {
	if err := checkCommon(filter); err != nil {
		return err
	}
	lv := strings.Split(filter, "/")
	for i, l := range lv {
		if strings.Contains(l, "#") && (l != "#" || i != len(lv)-1) {
			return fmt.Errorf("filter %q: '#' must be the whole last level: %w", filter, ErrInvalid)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("filter %q: '+' must be a whole level: %w", filter, ErrInvalid)
		}
	}
	return nil
}

func checkCommon(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty topic: %w", ErrInvalid)
	case len(s) > MaxBytes:
		return fmt.Errorf("topic of %d bytes exceeds %d: %w", len(s), MaxBytes, ErrInvalid)
	case strings.Count(s, "/") > MaxSlashes:
		return fmt.Errorf("topic %q has more than %d slashes: %w", s, MaxSlashes, ErrInvalid)
	case strings.HasPrefix(s, "$"):
		return fmt.Errorf("topic %q: reserved '$' prefix: %w", s, ErrInvalid)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("topic contains NUL: %w", ErrInvalid)
	}
	return nil
}
