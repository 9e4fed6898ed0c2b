// Package bridge turns job events into MQTT publishes. Publisher is the one
// interface; Embedded publishes into the in-process broker, and the external
// implementation (MQTT 5 over paho.golang) talks to another broker. Which one
// runs is chosen by configuration alone.
package bridge

import (
	"context"

	"github.com/heraldgw/herald/event"
)

// Publisher delivers an event to the topic of its channel, QoS 1. Final job
// events are published retained with a message expiry, so a browser that
// reconnects later still learns how its job ended.
type Publisher interface {
	Publish(ctx context.Context, e *event.Envelope) error
}
