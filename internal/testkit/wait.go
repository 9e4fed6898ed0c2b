package testkit

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, and fails the test naming what it
// waited for if it does not within the given time. Polls start at 1 ms and
// back off to 50 ms, so a fast condition costs little and a slow one (a
// queue's attributes over HTTP) is not hammered.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(within, cond) {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// Eventually polls cond as WaitFor does and reports whether it held within
// the given time, for a test that explains a timeout itself.
func Eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
	return true
}
