package broker

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// directHook keeps browsers' subscriptions out of mochi's topic index, so
// that only the broker's direct delivery (direct.go) reaches them, and
// keeps count of the subscriptions left in the index (services'), so that
// a publish to an app nobody else listens to skips mochi's walk entirely.
//
// mochi puts a subscription in its index when a client subscribes, when a
// returning client takes its stored session over, and when sessions are
// loaded at start; the hook takes browsers' out right after each (the
// channel's publishes are held meanwhile by the resume gate). It must be
// added before the store hook, whose OnSessionEstablished opens the gate.
type directHook struct {
	mqtt.HookBase
	b *Broker

	mu     sync.Mutex
	others map[string]map[string]struct{} // app → "client\x00filter" in mochi's index
	// counts is a copy of len(others[app]) read on every publish.
	counts atomic.Pointer[map[string]int]
	// inline counts filters of mochi's inline client (none today): they may
	// match anything, so every publish takes mochi's walk while any exist.
	inline atomic.Int64
}

var _ mqtt.Hook = (*directHook)(nil)

func newDirectHook(b *Broker) *directHook {
	h := &directHook{b: b, others: map[string]map[string]struct{}{}}
	h.counts.Store(&map[string]int{})
	return h
}

func (h *directHook) ID() string { return "herald-direct" }

func (h *directHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnSessionEstablished, mqtt.OnQosComplete:
		return true
	}
	return false
}

// isBrowser reports whether cl is a browser session: direct deliveries
// only.
func isBrowser(cl *mqtt.Client) bool { return !cl.Net.Inline && !isService(cl) }

// onlyDirect reports whether a publish to app's channel topics can reach
// nobody but the channel's browser, so mochi's walk may be skipped.
func (h *directHook) onlyDirect(app string) bool {
	return h.inline.Load() == 0 && (*h.counts.Load())[app] == 0
}

// OnSubscribe holds the channel's publishes while a browser's new filters
// pass through mochi's index (they are taken out in OnSubscribed).
func (h *directHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if isBrowser(cl) {
		h.b.store.order.gate.begin(cl.ID)
	}
	return pk
}

// OnSubscribed takes a browser's granted filters out of mochi's index, or
// counts a service's.
func (h *directHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	var granted []string
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code {
			granted = append(granted, f.Filter)
		}
	}
	switch {
	case cl.Net.Inline:
		h.inline.Add(int64(len(granted)))
	case isBrowser(cl):
		for _, f := range granted {
			h.b.srv.Topics.Unsubscribe(f, cl.ID)
		}
		h.b.store.order.gate.end(cl.ID)
	default:
		h.count(cl, granted, true)
	}
}

// OnUnsubscribed forgets a service's filters (mochi calls it for explicit
// unsubscribes and for every filter of a session that ends).
func (h *directHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	var filters []string
	for _, f := range pk.Filters {
		filters = append(filters, f.Filter)
	}
	switch {
	case cl.Net.Inline:
		h.inline.Add(-int64(len(filters)))
	case !isBrowser(cl):
		h.count(cl, filters, false)
	}
}

// count adds or removes cl's filters among those left in mochi's index.
func (h *directHook) count(cl *mqtt.Client, filters []string, add bool) {
	if len(filters) == 0 {
		return
	}
	app := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.others[app]
	for _, f := range filters {
		k := cl.ID + "\x00" + f
		if add {
			if set == nil {
				set = map[string]struct{}{}
				h.others[app] = set
			}
			set[k] = struct{}{}
		} else {
			delete(set, k)
		}
	}
	if len(set) == 0 {
		delete(h.others, app)
	}
	counts := make(map[string]int, len(h.others))
	for a, s := range h.others {
		counts[a] = len(s)
	}
	h.counts.Store(&counts)
}

// OnSessionEstablished takes the subscriptions of a browser's resumed
// session back out of mochi's index (mochi put them in when the new
// connection took the session over; the channel's publishes are held
// until the store hook, after this one, ends the resume), and notes what
// direct delivery needs of the connection.
func (h *directHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if !isBrowser(cl) {
		return
	}
	for f := range cl.State.Subscriptions.GetAll() {
		h.b.srv.Topics.Unsubscribe(f, cl.ID)
	}
	if c, ok := cl.Net.Conn.(*conn); ok {
		c.chanFilter = "apps/" + string(cl.Properties.Username) + "/channels/" + cl.ID + "/#"
		c.window = int(cl.Properties.Props.ReceiveMaximum)
	}
}

// afterRestore takes the restored browsers' subscriptions out of mochi's
// index and counts the services'.
func (h *directHook) afterRestore() {
	for _, cl := range h.b.srv.Clients.GetAll() {
		subs := cl.State.Subscriptions.GetAll()
		if isBrowser(cl) {
			for f := range subs {
				h.b.srv.Topics.Unsubscribe(f, cl.ID)
			}
			continue
		}
		filters := make([]string, 0, len(subs))
		for f := range subs {
			filters = append(filters, f)
		}
		h.count(cl, filters, true)
	}
}

// OnQosComplete sends the next message a browser's Receive Maximum held
// back, now that it acknowledged one.
func (h *directHook) OnQosComplete(cl *mqtt.Client, _ packets.Packet) {
	c, ok := cl.Net.Conn.(*conn)
	if !ok || c.window == 0 || !isBrowser(cl) {
		return
	}
	for {
		id, ok := c.nextHeld()
		if !ok {
			return
		}
		if m, ok := cl.State.Inflight.Get(id); ok {
			h.b.sendDelivery(cl, c, m)
			return
		}
	}
}
