package testkit

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrBelowEphemeralRange: the ports handed out are bindable and,
// where the kernel's range leaves room, below it.
func TestFreeAddrBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		addr := FreeAddr(t)
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if low-fixedLow >= 1000 && (port < fixedLow || port >= low) {
			t.Errorf("FreeAddr %s: want a port in [%d, %d)", addr, fixedLow, low)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddr %s cannot be bound: %v", addr, err)
		}
		_ = ln.Close()
	}
}
