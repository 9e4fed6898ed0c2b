package bridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/heraldgw/herald/event"
)

// ErrNoPublisher is returned (wrapped) by Apps.Publish for an event of an
// app this process holds no credentials for.
var ErrNoPublisher = errors.New("bridge: no publisher for the event's app")

// Apps routes each event to the publisher of its app. A service identity on
// the embedded broker (username = app id, password = API key) may publish
// only inside its own app, so a process that publishes for several apps
// through another gateway's broker holds one connection per app.
type Apps map[string]Publisher

var _ Publisher = Apps(nil)

// Publish hands e to the publisher of e.App.
func (a Apps) Publish(ctx context.Context, e *event.Envelope) error {
	p, ok := a[e.App]
	if !ok {
		return fmt.Errorf("event %s of app %q: %w", e.ID, e.App, ErrNoPublisher)
	}
	return p.Publish(ctx, e)
}
