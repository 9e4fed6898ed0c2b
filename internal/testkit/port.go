package testkit

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreeAddr is a loopback host:port that was free a moment ago, for a
// server the test starts itself (often another process, which binds it
// later). The port is taken below the kernel's ephemeral range where
// there is room: client sockets anywhere on the machine take ephemeral
// ports, so under load (a load test, another suite) a port the kernel
// handed out as free was often some connection's local port by the time
// the server bound it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	if low := ephemeralLow(); low-fixedLow >= 1000 {
		for range 100 {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(fixedLow+rand.IntN(low-fixedLow)))
			if ln, err := net.Listen("tcp", addr); err == nil {
				_ = ln.Close()
				return addr
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// fixedLow is the lowest port FreeAddr picks: above the well-known and
// most registered service ports.
const fixedLow = 20000

// ephemeralLow is the first port of the kernel's ephemeral range, or 0
// where it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}
