package federation

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/revocation"
)

// Revocations travel between replicas as retained messages on the upstream
// broker, one per channel on revocation.TopicPrefix, expiring when the
// revocation ends. A replica subscribes to them all at every connection
// (retained ones included), so one that was down or starts later learns
// every revocation still in force.

// ErrNotConnected is returned by Announce while the upstream connection is
// down.
var ErrNotConnected = errors.New("federation: upstream not connected")

// Announce publishes r to every replica (QoS 1, retained until r ends) and
// returns once the upstream broker has acknowledged it.
func (f *Federation) Announce(ctx context.Context, r revocation.Record) error {
	if err := r.Validate(); err != nil {
		return err
	}
	cm := f.cm.Load()
	if cm == nil || !f.up.Load() {
		return ErrNotConnected
	}
	left := time.Until(r.Until)
	if left <= 0 {
		return nil // over already: nothing to tell
	}
	expiry := uint32(min(math.Ceil(left.Seconds()), math.MaxUint32))
	_, err := cm.Publish(ctx, &paho.Publish{
		Topic: r.Topic(), QoS: 1, Retain: true, Payload: r.Encode(),
		Properties: &paho.PublishProperties{MessageExpiry: &expiry},
	})
	if err != nil {
		return fmt.Errorf("announce revocation of %s/%s: %w", r.App, r.Channel, err)
	}
	f.m.revocationsSent.Inc()
	return nil
}

// syncPrefix starts a replica's own marker topic, herald/sync/{clientId}.
const syncPrefix = "herald/sync/"

// subscribeRevocations asks for every revocation record, retained ones
// too; called at each (re)connection. The upstream broker sends the
// retained records as it handles the SUBSCRIBE, so a marker published
// after the SUBACK comes back after all of them: until it does, the
// replica is not ready, and a revoked token cannot slip through a replica
// that has just (re)connected.
func (f *Federation) subscribeRevocations(ctx context.Context, cm *autopaho.ConnectionManager) error {
	if f.cfg.OnRevocation == nil {
		return nil
	}
	sa, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: revocation.TopicPrefix + "#", QoS: 1, RetainHandling: 0},
		{Topic: f.syncTopic(), QoS: 1},
	}})
	if err != nil {
		return err
	}
	for _, code := range sa.Reasons {
		if code >= 0x80 {
			return fmt.Errorf("upstream refused the revocations subscription: reason %#x", code)
		}
	}
	_, err = cm.Publish(ctx, &paho.Publish{Topic: f.syncTopic(), QoS: 1, Payload: []byte("sync")})
	return err
}

func (f *Federation) syncTopic() string { return syncPrefix + f.cfg.ClientID }

// isRevocation reports whether an upstream message is a revocation record
// or the replica's sync marker.
func isRevocation(name string) bool {
	return strings.HasPrefix(name, revocation.TopicPrefix) || strings.HasPrefix(name, syncPrefix)
}

// revoked applies a revocation record from upstream.
func (f *Federation) revoked(p *paho.Publish) {
	if p.Topic == f.syncTopic() {
		f.revSynced.Store(true)
		return
	}
	if len(p.Payload) == 0 || f.cfg.OnRevocation == nil || strings.HasPrefix(p.Topic, syncPrefix) {
		return // a cleared retained record; another replica's marker
	}

	r, err := revocation.ParseTopic(p.Topic, p.Payload)
	if err != nil {
		f.m.dropped.Inc()
		f.log.Warn("upstream revocation record ignored", "topic", p.Topic, "error", err)
		return
	}
	if !time.Now().Before(r.Until) {
		return
	}
	f.m.revocationsReceived.Inc()
	f.cfg.OnRevocation(r)
}
