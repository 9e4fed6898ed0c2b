//go:build !linux

package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"
)

// pollerAvailable reports whether this platform has the polled transport;
// elsewhere every WebSocket is read by a goroutine of its own.
const pollerAvailable = false

var errNoPoller = errors.New("broker: the epoll WebSocket transport needs Linux")

type poller struct{}

func newPoller(*slog.Logger) (*poller, error) { return nil, errNoPoller }
func (p *poller) run()                        {}
func (p *poller) stop()                       {}

type wsConn struct{ net.Conn }

func newWSConn(*poller, *net.TCPConn, []byte, int64, func(func()), *metrics) (*wsConn, error) {
	return nil, errNoPoller
}

func (c *wsConn) closeGracefully(context.Context) { _ = c.Close() }
