package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/heraldgw/herald/topic"
)

// Errors returned (wrapped) by Publish for a message it will not send.
var (
	ErrQoS      = errors.New("broker: QoS must be 0 or 1")
	ErrTooLarge = errors.New("broker: message exceeds the maximum packet size")
)

// PublishOptions qualify a message published by the gateway itself.
type PublishOptions struct {
	// QoS is 0 or 1 (the most AWS IoT Core offers; docs/design.md events use 1).
	QoS byte
	// Retain keeps the message for later subscribers (final job events).
	Retain bool
	// Expiry is the MQTT 5 message expiry: after it the message is no
	// longer delivered, retained or kept for offline sessions. Rounded up
	// to whole seconds; zero means the broker's MessageExpiry.
	Expiry time.Duration
	// MakeRoom is for the gateway's own final job events, which must be
	// able to end a job: when the app is at its retained cap, its oldest
	// retained messages are removed to make room, and the cap on queued
	// messages does not apply (job events are bounded by the app's jobs in
	// flight). Without it a message the app has no room for is refused
	// with an error wrapping tenant.ErrQuota.
	MakeRoom bool
}

// Publish delivers a message to every subscriber of name as if a trusted
// client had published it: no ACL applies. It returns once the message is
// queued for every connected subscriber and, on disk (fsynced), in every
// persistent session it is queued for and as the retained message; it does
// not wait for acknowledgements. While storage cannot write, Publish
// refuses with an error wrapping ErrStorage; beyond the app's caps, with a
// *tenant.QuotaError; an error after the message
// was handed to mochi means it may still arrive (at least once).
func (b *Broker) Publish(ctx context.Context, name string, payload []byte, opt PublishOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !b.ready.Load() {
		return ErrNotRunning
	}
	if err := topic.ValidName(name); err != nil {
		return fmt.Errorf("publish to %q: %w", name, err)
	}
	if opt.QoS > 1 {
		return fmt.Errorf("publish to %q with QoS %d: %w", name, opt.QoS, ErrQoS)
	}
	// Fixed header (≤ 5) + topic (2 + len) + packet id (2) + properties (≤ 16).
	if size := 25 + len(name) + len(payload); size > b.cfg.MaxPacketSize {
		return fmt.Errorf("publish to %q: %d bytes of payload: %w", name, len(payload), ErrTooLarge)
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: opt.QoS, Retain: opt.Retain},
		TopicName:   name,
		Payload:     payload,
	}
	if opt.QoS > 0 || opt.Retain {
		// Kept (queued, retained): never share the caller's slice. A QoS 0
		// delivery is encoded before Publish returns.
		pk.Payload = append([]byte(nil), payload...)
	}
	if opt.QoS > 0 {
		pk.PacketID = 1 // required by validation; the inline client never awaits acks
	}
	if opt.Expiry > 0 {
		pk.Properties.MessageExpiryInterval = uint32((opt.Expiry + time.Second - 1) / time.Second)
	}
	if err := b.store.health(); err != nil {
		b.metrics.storageRefused.WithLabelValues("api").Inc()
		return fmt.Errorf("publish to %q: %w", name, err)
	}
	if err := b.quota.admit(pk, opt.MakeRoom); err != nil {
		return fmt.Errorf("publish to %q: %w", name, err)
	}
	stored, err := b.deliverPublished(pk, opt)
	if err != nil || !stored {
		return err
	}
	if err := b.store.sync(ctx); err != nil { // storage of what Publish queued
		return fmt.Errorf("publish to %q: not stored: %w", name, err)
	}
	return nil
}

// deliverPublished delivers one of the gateway's own messages: straight to
// the channel's browser when nobody else can take it, else through mochi
// (services, retained) on the inline client. Deliveries to a channel stay
// out of its session's resume (the resume gate). stored reports whether
// something may wait for storage.
func (b *Broker) deliverPublished(pk packets.Packet, opt PublishOptions) (stored bool, err error) {
	app, channel, isChannel := channelOf(pk.TopicName)
	if isChannel {
		gate := b.store.order.gate.enter(channel)
		defer gate.RUnlock()
	}
	if isChannel && !opt.Retain && b.direct.onlyDirect(app) {
		// Only the channel's browser can take it: no need for mochi.
		pk.Origin = b.inline.ID
		b.stamp(&pk)
		return b.deliverDirect(app, channel, pk), nil
	}
	if opt.QoS == 0 && !opt.Retain {
		// mochi may keep the slice (queued for a service's write loop).
		pk.Payload = append([]byte(nil), pk.Payload...)
	}
	if err := b.srv.InjectPacket(b.inline, pk); err != nil {
		return false, fmt.Errorf("publish to %q: %w", pk.TopicName, err)
	}
	return true, nil
}
