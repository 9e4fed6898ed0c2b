package web

import (
	"io"
	"net/http"
	"time"
)

// DefaultBodyTimeout bounds how long a request body may take to arrive.
// API bodies are at most 120 KiB, so this is generous for any real client
// and short for one that drips a byte at a time to hold a connection.
const DefaultBodyTimeout = 15 * time.Second

// bodyDeadline gives a request with a body BodyTimeout to deliver all of it.
// The deadline is lifted once the body has been read to its end: past that
// point net/http reads the connection in the background to notice a client
// going away, and a deadline firing then would cancel a slow handler.
// WebSocket upgrades are left alone: the broker owns those connections.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)); err == nil {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline at the end of the body.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
