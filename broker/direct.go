package broker

import (
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Direct delivery. A browser's client id is its channel, and the ACL lets
// it subscribe only inside apps/{app}/channels/{channel}/. So a message
// published to a channel topic has at most one browser subscriber, and it
// is found by id: the broker hands that client the message itself —
// checking its subscription, granting QoS, taking a packet id in its
// inflight window, storing it for a persistent session — and writes the
// encoded packet to its connection's outbox, instead of letting mochi walk
// its topic tree, copy the packet, queue it for the client's write loop
// and encode it there.
//
// To keep mochi from delivering the same message again, browsers'
// subscriptions are kept out of mochi's topic index (see index.go): they
// live in the client's own subscription map, which mochi still keeps,
// stores and restores. Services' subscriptions stay in the index and are
// served by mochi as before.

// backpressureWait is how long a publisher waits for a congested
// connection's queue to drain before a delivery to it (once per
// congestion; see outbox.room).
const backpressureWait = 250 * time.Millisecond

// channelOf splits a channel topic "apps/{app}/channels/{channel}/…" into
// its app and channel; ok is false for any other topic.
func channelOf(name string) (app, channel string, ok bool) {
	rest, found := strings.CutPrefix(name, "apps/")
	if !found {
		return "", "", false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return "", "", false
	}
	app, rest = rest[:i], rest[i+1:]
	rest, found = strings.CutPrefix(rest, "channels/")
	if !found {
		return "", "", false
	}
	i = strings.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return app, rest[:i], true
}

// matchFilter reports whether an MQTT topic filter matches a topic name
// (levels compared one by one; "+" is one level, a final "#" any rest,
// including none).
func matchFilter(filter, name string) bool {
	nameLeft := true // name still has a level to match (maybe empty)
	for {
		f, fRest, fMore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		if !nameLeft {
			return false
		}
		n, nRest, nMore := strings.Cut(name, "/")
		if f != "+" && f != n {
			return false
		}
		if !fMore {
			return !nMore
		}
		filter, name, nameLeft = fRest, nRest, nMore
		if !nameLeft && filter == "#" {
			return true // "a/#" matches "a"
		}
	}
}

// browserSubscription finds what cl subscribed to that matches name: the
// channel-wide filter first (what browsers use), otherwise every filter,
// merged the way mochi merges overlapping subscriptions (highest QoS).
func browserSubscription(cl *mqtt.Client, c *conn, name string) (packets.Subscription, bool) {
	if c != nil && c.chanFilter != "" {
		if sub, ok := cl.State.Subscriptions.Get(c.chanFilter); ok && cl.State.Subscriptions.Len() == 1 {
			return sub, true
		}
	}
	var out packets.Subscription
	found := false
	for _, sub := range cl.State.Subscriptions.GetAll() {
		if !matchFilter(sub.Filter, name) {
			continue
		}
		if !found {
			out, found = sub, true
			out.Identifiers = nil
		} else if sub.Qos > out.Qos {
			out.Qos = sub.Qos
		}
		if sub.Identifier > 0 {
			if out.Identifiers == nil {
				out.Identifiers = map[string]int{}
			}
			out.Identifiers[sub.Filter] = sub.Identifier
		}
	}
	return out, found
}

// deliverDirect delivers pk (already checked, with Created and Expiry set)
// to the browser of the channel its topic names, if that browser holds a
// matching subscription. It reports whether the message was queued in a
// persistent session (the caller then waits for storage).
func (b *Broker) deliverDirect(app, channel string, pk packets.Packet) (stored bool) {
	cl, ok := b.srv.Clients.Get(channel)
	if !ok || cl.Net.Inline || string(cl.Properties.Username) != app {
		return false
	}
	c, _ := cl.Net.Conn.(*conn)
	sub, ok := browserSubscription(cl, c, pk.TopicName)
	if !ok || (sub.NoLocal && pk.Origin == cl.ID) {
		return false
	}
	out := pk
	out.FixedHeader.Qos = min(pk.FixedHeader.Qos, sub.Qos, 1)
	if cl.Properties.ProtocolVersion < 5 || !sub.RetainAsPublished {
		out.FixedHeader.Retain = false
	}
	switch {
	case len(sub.Identifiers) > 0:
		out.Properties.SubscriptionIdentifier = subscriptionIDs(sub.Identifiers)
	case sub.Identifier > 0:
		out.Properties.SubscriptionIdentifier = []int{sub.Identifier}
	}
	live := c != nil && !cl.Closed()
	if out.FixedHeader.Qos > 0 {
		if !b.holdInSession(cl, &out) {
			return false
		}
		stored = persistent(cl)
		// Otherwise sent when the client comes back, or (Receive Maximum)
		// when it acknowledges what it has.
		if !live || !c.holdOrSend(cl, out.PacketID) {
			return stored
		}
	}
	if !live {
		return false
	}
	b.sendDelivery(cl, c, out)
	return stored
}

// stamp sets a message's creation time and expiry the way mochi does when
// it receives a publish: its own expiry interval or the broker's cap,
// whichever is shorter.
func (b *Broker) stamp(pk *packets.Packet) {
	pk.Created = time.Now().Unix()
	e := int64(pk.Properties.MessageExpiryInterval)
	if c := b.srv.Options.Capabilities.MaximumMessageExpiryInterval; c > 0 && (e == 0 || e > c) {
		e = c
	}
	if e > 0 {
		pk.Expiry = pk.Created + e
	}
}

// holdInSession gives a QoS 1 message a packet id in cl's session and
// stores it there (mochi's publishToClient does the same); false when the
// session is full or out of ids, the message is then dropped for cl.
func (b *Broker) holdInSession(cl *mqtt.Client, out *packets.Packet) bool {
	info := b.srv.Info
	if cl.State.Inflight.Len() >= b.cfg.MaxStored {
		atomic.AddInt64(&info.InflightDropped, 1)
		return false
	}
	id, err := cl.NextPacketID()
	if err != nil {
		atomic.AddInt64(&info.InflightDropped, 1)
		return false
	}
	out.PacketID = uint16(id)
	if cl.State.Inflight.Set(*out) {
		atomic.AddInt64(&info.Inflight, 1)
		// The hooks mochi would tell (it does not here: this is not
		// its delivery).
		b.store.OnQosPublish(cl, *out, out.Created, 0)
		b.quota.OnQosPublish(cl, *out, out.Created, 0)
	}
	return true
}

// sendDelivery encodes out for cl and queues it on cl's connection. A
// congested connection first slows the caller (backpressure); one whose
// queue stays full is disconnected, and loses the message at QoS 0 (a QoS
// 1 message stays in its session and is sent again when it returns).
func (b *Broker) sendDelivery(cl *mqtt.Client, c *conn, out packets.Packet) {
	ok, waited := c.out.room(backpressureWait)
	if waited > 0 {
		b.metrics.backpressure.Add(waited.Seconds())
	}
	if ok {
		var err error
		ok, err = b.writePublish(cl, c, out)
		if err != nil {
			return
		}
	}
	if !ok {
		b.metrics.dropped.WithLabelValues("queue_full").Inc()
		atomic.AddInt64(&b.srv.Info.MessagesDropped, 1)
		b.kick(cl, packets.ErrQuotaExceeded)
	}
}

// writePublish encodes out the way mochi's WritePacket would for cl and
// sends it; false when the connection's queue is full.
func (b *Broker) writePublish(cl *mqtt.Client, c *conn, out packets.Packet) (bool, error) {
	if out.Expiry > 0 {
		out.Properties.MessageExpiryInterval = uint32(max(out.Expiry-time.Now().Unix(), 1))
	}
	out.ProtocolVersion = cl.Properties.ProtocolVersion
	out.Mods.MaxSize = cl.Properties.Props.MaximumPacketSize
	pkt, frame := getBuf(), getBuf()
	defer putBuf(pkt)
	defer putBuf(frame)
	var err error
	if pkt.b, err = appendPublish(pkt.b, &out); err != nil {
		return true, err
	}
	size := len(pkt.b)
	if out.Mods.MaxSize > 0 && uint32(size) > out.Mods.MaxSize {
		return true, packets.ErrPacketTooLarge // [MQTT-3.1.2-24]
	}
	frame.b = c.frameFn(frame.b, pkt.b)
	err = c.out.send(frame.b, true)
	if err == errQueueFull {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	info := b.srv.Info
	atomic.AddInt64(&info.MessagesSent, 1)
	atomic.AddInt64(&info.PacketsSent, 1)
	atomic.AddInt64(&info.BytesSent, int64(size))
	return true, nil
}

// subscriptionIDs lists a merged subscription's identifiers, sorted
// [MQTT-3.3.4-4].
func subscriptionIDs(m map[string]int) []int {
	ids := make([]int, 0, len(m))
	for _, id := range m {
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
	return ids
}
