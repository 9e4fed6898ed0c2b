// Package testkit is what Herald's tests share: starting parts and external
// servers (Mosquitto), generating media samples, and waiting for
// conditions instead of sleeping.
package testkit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// Go runs a part's Run in the background until the test ends, or until the
// returned stop is called: stop cancels Run's context, waits for it to
// return and returns its error (context.Canceled counts as none). If the
// test never calls stop, cleanup does, and reports a failure of Run.
func Go(t testing.TB, run func(context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	var err error
	halt := func() error {
		once.Do(func() {
			cancel()
			err = <-done
			if errors.Is(err, context.Canceled) {
				err = nil
			}
		})
		return err
	}
	var stopped atomic.Bool // the test called stop and has the error
	t.Cleanup(func() {
		if err := halt(); err != nil && !stopped.Load() {
			t.Errorf("part stopped with: %v", err)
		}
	})
	return func() error {
		stopped.Store(true)
		return halt()
	}
}
