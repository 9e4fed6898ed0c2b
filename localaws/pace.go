package localaws

import (
	"io"
	"net/http"
	"time"
)

// Defaults for the HTTP server's timeouts (Config).
const (
	DefaultIdleTimeout = 2 * time.Minute
	DefaultBodyGrace   = 30 * time.Second
	DefaultBodyMinRate = 16 << 10 // bytes per second
)

// paceBodies ends a request whose body falls behind minRate bytes per
// second after a grace period: an upload may be gigabytes, so a fixed
// deadline would not do, but a client dripping a byte every few seconds
// must not hold a connection (and a handler) for hours. Each read moves
// the connection's read deadline to start + grace + received/minRate; the
// deadline is lifted at the end of the body.
func paceBodies(next http.Handler, grace time.Duration, minRate int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		start := time.Now()
		if err := rc.SetReadDeadline(start.Add(grace)); err == nil {
			r.Body = &pacedBody{ReadCloser: r.Body, rc: rc, start: start, grace: grace, rate: float64(minRate)}
		}
		next.ServeHTTP(w, r)
	})
}

type pacedBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  float64
	n     int64
	done  bool
}

func (b *pacedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case b.done:
	case err == io.EOF:
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case n > 0:
		earned := time.Duration(float64(b.n) / b.rate * float64(time.Second))
		_ = b.rc.SetReadDeadline(b.start.Add(b.grace + earned))
	}
	return n, err
}
