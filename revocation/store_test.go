package revocation

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	chA = "AAAAAAAAAAAAAAAAAAAAAA"
	chB = "BBBBBBBBBBBBBBBBBBBBBB"
)

func TestStoreSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations.jsonl")
	now := time.Now()
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Record{
		{App: "demo", Channel: chA, Until: now.Add(time.Hour)},
		{App: "demo", Channel: chB, Until: now.Add(-time.Second)}, // already over
		{App: "other", Channel: chA, Until: now.Add(time.Hour)},
	} {
		if added, err := s.Revoke(r); err != nil || !added {
			t.Fatalf("Revoke(%+v): %v %v", r, added, err)
		}
	}
	if added, err := s.Revoke(Record{App: "demo", Channel: chA, Until: now.Add(time.Minute)}); err != nil || added {
		t.Errorf("an earlier end for a revoked channel: added %v, err %v; want false, nil", added, err)
	}
	check := func(s *Store) {
		t.Helper()
		if !s.Revoked("demo", chA, now) || !s.Revoked("other", chA, now) {
			t.Error("revoked channel not reported")
		}
		if s.Revoked("demo", chB, now) || s.Revoked("demo", chA, now.Add(2*time.Hour)) {
			t.Error("a revocation that ended still holds")
		}
		if s.Revoked("nope", chA, now) {
			t.Error("unknown app reported")
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(Record{App: "demo", Channel: chB, Until: now.Add(time.Hour)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Revoke after Close: %v", err)
	}
	// A write torn by a crash leaves a partial last line.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.WriteString(`{"app":"demo","chan`)
	_ = f.Close()

	s2, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	check(s2)
	if s2.Len() != 2 {
		t.Errorf("reopened: %d records, want 2 (the ended one dropped)", s2.Len())
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n != 2 || strings.Contains(string(b), "chan\"") {
		t.Errorf("file not compacted at open:\n%s", b)
	}
}

func TestStoreSweepAndCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	// The same channel revoked again and again with later ends: one live
	// record, many lines, until the file is compacted.
	for i := range 1100 {
		if _, err := s.Revoke(Record{App: "demo", Channel: chA, Until: now.Add(time.Duration(i+1) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n > 1030 {
		t.Errorf("file has %d lines for 1 live record: not compacted", n)
	}
	if !s.Revoked("demo", chA, now.Add(1099*time.Second)) {
		t.Error("latest end lost")
	}
	if err := s.Sweep(now.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 {
		t.Errorf("after sweep: %d records", s.Len())
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("after sweep the file holds %q", b)
	}
}

func TestRecordParse(t *testing.T) {
	until := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	good := Record{App: "demo", Channel: chA, Until: until}
	r, err := ParseTopic(good.Topic(), good.Encode())
	if err != nil || r != good {
		t.Fatalf("round trip: got %+v, %v", r, err)
	}
	for name, tc := range map[string]struct{ topic, payload string }{
		"other channel's topic": {TopicPrefix + "demo/" + chB, string(good.Encode())},
		"not json":              {good.Topic(), "x"},
		"bad channel":           {TopicPrefix + "demo/x", `{"app":"demo","channel":"x","until":"2026-12-01T12:00:00Z"}`},
		"bad app":               {TopicPrefix + "a+b/" + chA, `{"app":"a+b","channel":"` + chA + `","until":"2026-12-01T12:00:00Z"}`},
		"no end":                {good.Topic(), `{"app":"demo","channel":"` + chA + `"}`},
	} {
		if _, err := ParseTopic(tc.topic, []byte(tc.payload)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

// FuzzParse: the parser of records from the shared broker never panics,
// and what it accepts validates and encodes back to itself.
func FuzzParse(f *testing.F) {
	f.Add([]byte(Record{App: "demo", Channel: chA, Until: time.Unix(1_800_000_000, 0).UTC()}.Encode()))
	f.Add([]byte(`{"app":"","channel":"","until":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid record %+v: %v", r, err)
		}
		r2, err := Parse(r.Encode())
		if err != nil || !r2.Until.Equal(r.Until) || r2.App != r.App || r2.Channel != r.Channel {
			t.Fatalf("re-encoded %+v: %+v %v", r, r2, err)
		}
	})
}
