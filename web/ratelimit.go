package web

import (
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldgw/herald/tenant"
)

// buckets keeps one token bucket per key (a client IP, a browser session,
// an app), forgetting those idle for ten minutes so a scan of many
// addresses or sessions cannot grow it without bound. (A bucket idle that
// long is full again, so forgetting it changes nothing.)
type buckets struct {
	mu    sync.Mutex
	m     map[string]*bucket
	swept time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// get returns key's limiter, made with limit and burst on first use.
func (b *buckets) get(key string, limit rate.Limit, burst int, now time.Time) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.swept) > time.Minute {
		for k, v := range b.m {
			if now.Sub(v.seen) > 10*time.Minute {
				delete(b.m, k)
			}
		}
		b.swept = now
	}
	if b.m == nil {
		b.m = map[string]*bucket{}
	}
	v, ok := b.m[key]
	if !ok {
		v = &bucket{lim: rate.NewLimiter(limit, burst)}
		b.m[key] = v
	}
	v.seen = now
	return v.lim
}

// take takes a token from every limiter, or from none: it returns how long
// to wait before all of them would have one (0: taken) and the index of
// the limiter that makes the wait longest. A nil limiter is no limit.
func take(now time.Time, lims ...*rate.Limiter) (wait time.Duration, which int) {
	taken := make([]*rate.Reservation, 0, len(lims))
	for i, l := range lims {
		if l == nil {
			continue
		}
		r := l.ReserveN(now, 1)
		taken = append(taken, r)
		if d := r.DelayFrom(now); d > wait {
			wait, which = d, i
		}
	}
	if wait > 0 {
		for _, r := range taken {
			r.CancelAt(now)
		}
	}
	return wait, which
}

// perSecond is a token bucket holding ten seconds' worth of rate (at
// least one token); nil for a negative rate (no limit).
func perSecond(b *buckets, key string, perSec float64, now time.Time) *rate.Limiter {
	if perSec < 0 {
		return nil
	}
	return b.get(key, rate.Limit(perSec), max(1, int(math.Ceil(perSec*10))), now)
}

// clientIP is r's remote address without the port.
func clientIP(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ip
}

// allowSession reports whether an anonymous session may be minted for r's
// address.
func (s *Server) allowSession(r *http.Request) bool {
	perMin := s.cfg.SessionsPerMinutePerIP
	l := s.ipBuckets.get(clientIP(r), rate.Limit(perMin/60), int(perMin/2)+1, s.now())
	return l.AllowN(s.now(), 1)
}

// appLimiter returns the per-app limiter for POST /v1/events.
func (s *Server) appLimiter(app string, perSec float64) *rate.Limiter {
	return s.eventBuckets.get(app, rate.Limit(perSec), int(perSec)+1, s.now())
}

// retryAfter is the cause of a refusal that knows when to come back;
// writeError turns it into a Retry-After header.
type retryAfter time.Duration

func (r retryAfter) Error() string             { return "retry after " + time.Duration(r).String() }
func (r retryAfter) RetryAfter() time.Duration { return time.Duration(r) }

// takeUploadGrant counts one upload grant against the session's and the
// app's rates, refusing with 429 and Retry-After when either is spent.
func (s *Server) takeUploadGrant(app *tenant.App, channel string) error {
	now := s.now()
	wait, which := take(now,
		perSecond(&s.grantBuckets, app.ID+"/"+channel, app.SessionUploadsPerMinute/60, now),
		perSecond(&s.grantBuckets, app.ID, app.UploadsPerSecond, now))
	switch {
	case wait == 0:
		return nil
	case which == 0:
		s.metrics.limited.WithLabelValues(app.ID, "session_uploads").Inc()
		return apiError(CodeRateLimited, retryAfter(wait),
			"this session asks for uploads faster than %g a minute; retry in %s", app.SessionUploadsPerMinute, wait.Round(100*time.Millisecond))
	default:
		s.metrics.limited.WithLabelValues(app.ID, "app_uploads").Inc()
		return apiError(CodeRateLimited, retryAfter(wait),
			"app %q asks for uploads faster than %g a second; retry in %s", app.ID, app.UploadsPerSecond, wait.Round(100*time.Millisecond))
	}
}
