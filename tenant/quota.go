package tenant

import (
	"errors"
	"fmt"
	"time"
)

// ErrQuota is wrapped by every refusal made because an app reached one of
// its limits (jobs in flight, retained or queued messages).
var ErrQuota = errors.New("app quota reached")

// QuotaError is a refusal because App is at its limit Limit (the setting's
// name, e.g. "maxJobsInFlight") of Max. Retry is when to try again.
type QuotaError struct {
	App   string
	Limit string
	Max   int64
	Retry time.Duration
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("app %q is at its %s (%d): %v", e.App, e.Limit, e.Max, ErrQuota)
}

func (e *QuotaError) Unwrap() error { return ErrQuota }

// RetryAfter is when to try again (the API's Retry-After).
func (e *QuotaError) RetryAfter() time.Duration { return e.Retry }
