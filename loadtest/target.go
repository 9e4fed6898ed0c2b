package loadtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
)

// ErrNotLoopback is returned for a target or source address outside
// 127.0.0.0/8 and ::1: the load generator only ever loads this machine.
var ErrNotLoopback = errors.New("not a loopback address")

// CheckLoopback accepts a URL whose host is a literal loopback address or
// "localhost".
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("target %q: %w", raw, err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q: %w", raw, ErrNotLoopback)
	}
	return nil
}

// sourceIPs lists n loopback source addresses 127.0.0.2, 127.0.0.3, … for
// IPv4 targets; an IPv6 (::1) target gets none (the kernel picks).
func sourceIPs(target string, n int) []string {
	u, err := url.Parse(target)
	if err != nil || n <= 0 {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.To4() == nil {
		return nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("127.0.%d.%d", (i+2)/254, (i+2)%254+1))
	}
	return out
}
