package event

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const ch = "AAAAAAAAAAAAAAAAAAAAAA"

func TestDecodeForApp(t *testing.T) {
	now := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		body    string
		wantErr bool
		topic   string
	}{
		{"custom event", `{"v":1,"type":"x.hello","id":"evt_1","channel":"` + ch + `","seq":1}`, false, "apps/demo/channels/" + ch + "/events"},
		{"job completed", `{"v":1,"type":"job.completed","id":"e","jobId":"j1","channel":"` + ch + `","seq":3,"time":"2026-11-23T18:00:00Z","outputs":[{"name":"t","key":"k","contentType":"image/webp","bytes":1}]}`, false, "apps/demo/channels/" + ch + "/jobs/j1"},
		{"same app given", `{"v":1,"type":"x.a","id":"e","app":"demo","channel":"` + ch + `"}`, false, "apps/demo/channels/" + ch + "/events"},
		{"other app", `{"v":1,"type":"x.a","id":"e","app":"other","channel":"` + ch + `"}`, true, ""},
		{"bad version", `{"v":2,"type":"x.a","id":"e","channel":"` + ch + `"}`, true, ""},
		{"bad type", `{"v":1,"type":"hello","id":"e","channel":"` + ch + `"}`, true, ""},
		{"job without jobId", `{"v":1,"type":"job.accepted","id":"e","channel":"` + ch + `"}`, true, ""},
		{"failed without code", `{"v":1,"type":"job.failed","id":"e","jobId":"j","channel":"` + ch + `"}`, true, ""},
		{"wildcard channel", `{"v":1,"type":"x.a","id":"e","channel":"#"}`, true, ""},
		{"slash in job", `{"v":1,"type":"job.accepted","id":"e","jobId":"a/b","channel":"` + ch + `"}`, true, ""},
		{"unknown field", `{"v":1,"type":"x.a","id":"e","channel":"` + ch + `","colour":1}`, true, ""},
		{"trailing data", `{"v":1,"type":"x.a","id":"e","channel":"` + ch + `"} {}`, true, ""},
		{"trailing brace", `{"v":1,"type":"x.a","id":"e","channel":"` + ch + `"}}`, true, ""},
		{"trailing bracket", `{"v":1,"type":"x.a","id":"e","channel":"` + ch + `"}]`, true, ""},
		{"trailing newline", `{"v":1,"type":"x.a","id":"e","channel":"` + ch + `"}` + "\n", false, "apps/demo/channels/" + ch + "/events"},
		{"not json", `hello`, true, ""},
		{"missing id", `{"v":1,"type":"x.a","channel":"` + ch + `"}`, true, ""},
		{"bad progress", `{"v":1,"type":"job.progress","id":"e","jobId":"j","channel":"` + ch + `","progress":{"done":3,"total":2}}`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeForApp(strings.NewReader(tt.body), "demo", now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got err %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v does not wrap ErrInvalid", err)
				}
				return
			}
			if got := e.Topic(); got != tt.topic {
				t.Errorf("topic: got %q, want %q", got, tt.topic)
			}
			if e.Time.IsZero() {
				t.Error("time not defaulted")
			}
		})
	}
}

func TestEncodeTooLarge(t *testing.T) {
	e := &Envelope{V: 1, Type: "x.big", ID: "e", App: "demo", Channel: ch, Time: time.Now(), Data: []byte(`"` + strings.Repeat("a", MaxBytes) + `"`)}
	if _, err := e.Encode(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
}

func TestStableID(t *testing.T) {
	if StableID("j", "completed") != StableID("j", "completed") {
		t.Fatal("not stable")
	}
	if StableID("j", "a") == StableID("ja") {
		t.Fatal("parts not separated")
	}
}

// FuzzDecodeForApp checks the validator never panics and that whatever it
// accepts encodes, stays in the caller's app, and targets a valid topic.
func FuzzDecodeForApp(f *testing.F) {
	f.Add(`{"v":1,"type":"x.hello","id":"evt_1","channel":"` + ch + `","seq":1}`)
	f.Add(`{"v":1,"type":"job.failed","id":"e","jobId":"j","channel":"` + ch + `","error":{"code":"timeout","message":"m"}}`)
	f.Add(`{"v":1,"type":"job.progress","id":"e","jobId":"j","channel":"c","progress":{"done":1,"total":2}}`)
	f.Add(`{}`)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body string) {
		e, err := DecodeForApp(strings.NewReader(body), "demo", now)
		if err != nil {
			return
		}
		if e.App != "demo" {
			t.Fatalf("app %q escaped the caller's app", e.App)
		}
		if !strings.HasPrefix(e.Topic(), "apps/demo/channels/") {
			t.Fatalf("topic %q outside app", e.Topic())
		}
		if _, err := e.Encode(); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("accepted envelope does not encode: %v", err)
		}
	})
}
