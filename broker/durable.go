package broker

import (
	"context"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ackTimeout bounds how long a client's QoS 1 publish waits for storage
// before it is refused.
const ackTimeout = 10 * time.Second

// durableHook gives a client's QoS 1 PUBLISH its PUBACK only once the
// message is stored, as Publish does for the gateway's own messages, and
// refuses publishes while storage cannot write.
//
// mochi writes the PUBACK before it delivers the message (and so before
// the storage hook has even seen it). So the hook delivers the message
// itself first, through an inline client carrying the publisher's id (so
// No Local still applies), waits for storage, and then tells mochi to skip
// its own delivery (pk.Ignore): mochi then only writes the PUBACK.
type durableHook struct {
	mqtt.HookBase
	b *Broker
}

var _ mqtt.Hook = (*durableHook)(nil)

func (h *durableHook) ID() string { return "herald-durable" }

func (h *durableHook) Provides(b byte) bool { return b == mqtt.OnPublish }

// OnPublish runs after the ACL hook has accepted the publish. A message to
// a channel topic goes to the channel's browser directly (direct.go);
// mochi then retains it and delivers it to the services subscribed to it,
// unless there are none (pk.Ignore skips mochi's delivery; returned as the
// packet rather than as CodeSuccessIgnore, which costs allocations per
// publish in mochi's error checks).
func (h *durableHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	app, channel, isChannel := channelOf(pk.TopicName)
	if cl.Net.Inline {
		// Publish, or deliver below, injected it: they hold the resume
		// gate and wait for storage themselves.
		if isChannel {
			b.deliverDirect(app, channel, pk)
		}
		return pk, nil
	}
	if err := b.store.health(); err != nil {
		b.metrics.storageRefused.WithLabelValues("mqtt").Inc()
		return pk, h.refuse(cl, pk)
	}
	alone := isChannel && !pk.FixedHeader.Retain && b.direct.onlyDirect(app)
	var stored bool
	var err error
	if isChannel {
		gate := b.store.order.gate.enter(channel)
		stored, err = h.deliver(cl, pk, app, channel, alone)
		gate.RUnlock()
	} else {
		stored, err = h.deliver(cl, pk, app, channel, alone)
	}
	switch {
	case err != nil:
		return pk, err
	case pk.FixedHeader.Qos == 0 && !alone:
		return pk, nil // mochi delivers to services and retains
	case !stored:
		return ignored(pk) // nothing stored: no commit to wait for
	}
	if err := h.ackWhenStored(cl, pk); err != nil {
		return pk, err
	}
	return ignored(pk)
}

// deliver hands pk to the channel's browser directly and, unless the
// browser is alone to take it, a QoS 1 message to mochi (services,
// retained) through an inline client carrying the publisher's id, so No
// Local still applies; mochi delivers QoS 0 itself after the hook. stored
// reports whether something may wait for storage.
func (h *durableHook) deliver(cl *mqtt.Client, pk packets.Packet, app, channel string, alone bool) (stored bool, err error) {
	b := h.b
	if pk.FixedHeader.Qos == 0 || alone {
		if channel != "" {
			stored = b.deliverDirect(app, channel, pk)
		}
		return stored, nil
	}
	self := b.srv.NewClient(nil, mqtt.LocalListener, cl.ID, true)
	self.Properties.ProtocolVersion = cl.Properties.ProtocolVersion
	self.Properties.Username = cl.Properties.Username
	if err := b.srv.InjectPacket(self, pk); err != nil {
		b.log.Warn("mqtt publish not delivered", "client", cl.ID, "topic", pk.TopicName, "error", err)
		return false, h.refuse(cl, pk)
	}
	return true, nil
}

// ackWhenStored makes the PUBACK mochi writes for pk wait until pk is on
// disk: held in the connection's ack queue (acks.go), so the connection's
// next PUBLISH is read meanwhile; or, with nothing to hold it in, waited
// for here. The error is the refusal to hand mochi.
func (h *durableHook) ackWhenStored(cl *mqtt.Client, pk packets.Packet) error {
	b := h.b
	c, _ := cl.Net.Conn.(*conn)
	if c == nil || !b.store.durable() {
		ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
		defer cancel()
		if err := b.store.sync(ctx); err != nil {
			b.metrics.storageRefused.WithLabelValues("mqtt").Inc()
			return h.refuse(cl, pk)
		}
		return nil
	}
	q := c.acks.Load()
	if q == nil {
		// Only the client's read loop gets here: no other writer.
		q = newAckQueue(cl.Properties.ProtocolVersion == 5,
			func(p []byte) { _, _ = sendFramed(c.out, c.frameFn, p) },
			func() { b.kick(cl, packets.ErrUnspecifiedError) })
		c.acks.Store(q)
	}
	a, err := q.hold(pk.PacketID, ackTimeout)
	if err != nil {
		b.metrics.storageRefused.WithLabelValues("mqtt").Inc()
		return h.refuse(cl, pk)
	}
	stored := func(err error) {
		if err != nil {
			b.metrics.storageRefused.WithLabelValues("mqtt").Inc()
		}
		q.stored(a, err)
	}
	if !b.store.notify(stored) {
		stored(ErrNotRunning)
	}
	return nil
}

// refuse says no the way the client's protocol version allows: an MQTT 5
// client gets PUBACK 0x97 (quota exceeded: try later); 3.1.1 has no
// negative PUBACK, so the client is disconnected and will publish again
// when it reconnects. A QoS 0 publish is dropped.
func (h *durableHook) refuse(cl *mqtt.Client, pk packets.Packet) error {
	switch {
	case cl.Properties.ProtocolVersion < 5:
		h.b.kick(cl, packets.ErrUnspecifiedError)
		return packets.ErrRejectPacket
	case pk.FixedHeader.Qos == 0:
		return packets.ErrRejectPacket
	}
	return packets.ErrQuotaExceeded
}

// ignored tells mochi to skip its own delivery (and retaining) of pk.
func ignored(pk packets.Packet) (packets.Packet, error) {
	pk.Ignore = true
	return pk, nil
}
