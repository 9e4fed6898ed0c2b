// Package lifecycle holds what Herald's long-lived parts share: each has
// Run(ctx) error, which may be called once and returns when ctx has ended
// and the part has drained (or when it fails).
package lifecycle

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrRunTwice is returned (wrapped, naming the part) by a second call of a
// part's Run.
var ErrRunTwice = errors.New("Run called twice")

// Once guards a part's Run against a second call. The zero value is ready.
type Once struct{ ran atomic.Bool }

// Start marks the part as run. From the second call on it returns
// ErrRunTwice prefixed with part ("broker: Run called twice").
func (o *Once) Start(part string) error {
	if o.ran.Swap(true) {
		return fmt.Errorf("%s: %w", part, ErrRunTwice)
	}
	return nil
}
