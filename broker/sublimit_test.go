package broker

import (
	"bytes"
	"fmt"
	"testing"
)

// A client may not grow its subscription set without bound: every filter is
// kept in memory (and in the session store) for the life of the session.
func TestSubscriptionLimit(t *testing.T) {
	tb := startBroker(t, Config{MaxSubscriptions: 3})
	s := mint(t, tb, "demo")
	own := "apps/demo/channels/" + s.Channel
	mc := mustConnect(t, dialWS(t, tb, demoOrigin), s.Channel, "demo", s.Token)
	tests := []struct {
		name    string
		filters []string
		want    []byte
	}{
		{"under limit", []string{own + "/a", own + "/b"}, []byte{1, 1}},
		{"fills limit then over", []string{own + "/c", own + "/d"}, []byte{1, 0x87}},
		{"resubscribe existing", []string{own + "/a"}, []byte{1}},
		{"still over", []string{own + "/#"}, []byte{0x87}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mc.subscribe(t, tt.filters...); !bytes.Equal(got, tt.want) {
				t.Fatalf("SUBACK = %#x, want %#x", got, tt.want)
			}
		})
	}
	many := make([]string, 50)
	for i := range many {
		many[i] = fmt.Sprintf("%s/x%d", own, i)
	}
	got := mc.subscribe(t, many...)
	for i, c := range got {
		if c != 0x87 {
			t.Fatalf("filter %d granted (%#x) beyond the limit", i, c)
		}
	}
}

func TestServiceSubscriptionLimit(t *testing.T) {
	tb := startBroker(t, Config{MaxSubscriptions: 1, MaxServiceSubscriptions: 2})
	mc := mustConnect(t, dialTCP(t, tb), "svc-a", "demo", demoKey)
	if got, want := mc.subscribe(t, "apps/demo/a", "apps/demo/b", "apps/demo/c"), []byte{1, 1, 0x87}; !bytes.Equal(got, want) {
		t.Fatalf("SUBACK = %#x, want %#x", got, want)
	}
}
