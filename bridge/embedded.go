package bridge

import (
	"context"
	"fmt"

	"github.com/heraldgw/herald/broker"
	"github.com/heraldgw/herald/event"
)

// Embedded publishes into the broker running in this process.
type Embedded struct {
	b        *broker.Broker
	makeRoom bool
}

var _ Publisher = (*Embedded)(nil)

// NewEmbedded returns a Publisher for the in-process broker b.
func NewEmbedded(b *broker.Broker) *Embedded { return &Embedded{b: b} }

// ForJobs returns a Publisher for the processor's own job events: at the
// app's retained cap their final events make room
// (broker.PublishOptions.MakeRoom) rather than being refused, so a job can
// always end. Events from services keep the app's caps.
func (p *Embedded) ForJobs() *Embedded { return &Embedded{b: p.b, makeRoom: true} }

// Publish validates e and publishes it QoS 1; final events are retained for
// event.FinalExpiry.
func (p *Embedded) Publish(ctx context.Context, e *event.Envelope) error {
	if err := e.Validate(); err != nil {
		return err
	}
	payload, err := e.Encode()
	if err != nil {
		return err
	}
	opt := broker.PublishOptions{QoS: 1, MakeRoom: p.makeRoom}
	if e.Final() {
		opt.Retain, opt.Expiry = true, event.FinalExpiry
	}
	if err := p.b.Publish(ctx, e.Topic(), payload, opt); err != nil {
		return fmt.Errorf("publish event %s to %s: %w", e.ID, e.Topic(), err)
	}
	return nil
}
