// Package mqttclient is what Herald's clients of another MQTT broker (the
// bridge's publishers, the federation's follower) share: how a broker URL is
// checked and completed, and how they back off between connection attempts.
package mqttclient

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

// ErrURL is returned (wrapped, naming the URL) for a broker URL that cannot
// be dialled.
var ErrURL = errors.New("bad broker url")

// defaultPort is the registered port of a broker URL scheme.
func defaultPort(scheme string) (string, bool) {
	switch scheme {
	case "mqtt":
		return "1883", true
	case "mqtts":
		return "8883", true
	case "ws":
		return "80", true
	case "wss":
		return "443", true
	}
	return "", false
}

// ParseURL checks a broker URL (mqtt://, mqtts://, ws:// or wss://, with a
// host) and gives it the scheme's port if it has none.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("broker url %q: %w: %w", raw, ErrURL, err)
	}
	port, ok := defaultPort(u.Scheme)
	switch {
	case !ok:
		return nil, fmt.Errorf("broker url %q: %w: scheme must be mqtt, mqtts, ws or wss", raw, ErrURL)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("broker url %q: %w: no host", raw, ErrURL)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, nil
}

// MinReconnectDelay is the floor of a reconnect backoff's limit, so a
// misconfigured limit cannot spin on a dead broker.
const MinReconnectDelay = 20 * time.Millisecond

// Backoff grows from ~100 ms towards limit (at least MinReconnectDelay)
// with jitter, so a fleet of processes does not reconnect in lockstep
// after a broker restart.
func Backoff(limit time.Duration) autopaho.Backoff {
	limit = max(limit, MinReconnectDelay)
	lo := min(100*time.Millisecond, limit/4)
	return autopaho.NewExponentialBackoff(lo, limit, min(4*lo, limit), 2)
}
