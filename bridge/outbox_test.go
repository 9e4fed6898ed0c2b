package bridge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestOutboxOrderAndReopen(t *testing.T) {
	dir := t.TempDir()
	o, err := openOutbox(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Two channels interleaved, 20 messages each.
	for i := range 40 {
		ch := []string{"A", "B"}[i%2]
		m := &message{topic: "apps/demo/channels/" + ch + "/jobs/j", payload: []byte(fmt.Sprint(i)), retain: i == 39, expiry: 7}
		m.key = channelKey(m.topic)
		if err := o.push(m); err != nil {
			t.Fatal(err)
		}
	}
	// Take one of A and leave it unacknowledged: A is now busy.
	first, _ := o.take()
	if got := string(first.payload); got != "0" {
		t.Fatalf("first take: got %q, want \"0\"", got)
	}
	if again, _ := o.take(); again == nil || again.key == first.key {
		t.Fatalf("second take: got %+v, want the head of the other channel", again)
	}
	// A process restart: everything is still there, in order.
	o2, err := openOutbox(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := o2.len(); got != 40 {
		t.Fatalf("reopened: got %d messages, want 40", got)
	}
	last := map[string]int{"apps/demo/channels/A": -1, "apps/demo/channels/B": -1}
	for range 40 {
		m, err := o2.take()
		if err != nil || m == nil {
			t.Fatalf("take: %v %v", m, err)
		}
		var n int
		fmt.Sscan(string(m.payload), &n)
		if n <= last[m.key] {
			t.Errorf("key %s: got %d after %d", m.key, n, last[m.key])
		}
		last[m.key] = n
		if m.expiry != 7 || m.retain != (n == 39) {
			t.Errorf("message %d: got expiry %d retain %v", n, m.expiry, m.retain)
		}
		o2.done(m)
	}
	if got := o2.len(); got != 0 {
		t.Errorf("after done: got %d, want 0", got)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"+fileSuffix))
	if len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}

func TestOutboxBoundAndCorruptFile(t *testing.T) {
	dir := t.TempDir()
	o, _ := openOutbox(dir, 2)
	for i := range 3 {
		m := &message{topic: "apps/demo/channels/A/events", key: "apps/demo/channels/A", payload: []byte("x")}
		err := o.push(m)
		if i < 2 && err != nil {
			t.Fatal(err)
		}
		if i == 2 && !errors.Is(err, ErrQueueFull) {
			t.Fatalf("third push: got %v, want ErrQueueFull", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000099"+fileSuffix), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	o2, err := openOutbox(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := o2.len(); got != 2 {
		t.Errorf("reopened with a corrupt file: got %d, want 2", got)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(&message{topic: "apps/a/channels/b/events", payload: []byte(`{"v":1}`), retain: true, expiry: 60}))
	f.Add([]byte("HQ1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		again, err := decodeMessage(encodeMessage(m))
		if err != nil || again.topic != m.topic || string(again.payload) != string(m.payload) || again.retain != m.retain || again.expiry != m.expiry {
			t.Fatalf("round trip changed %+v into %+v (%v)", m, again, err)
		}
	})
}
