package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// dialers hands out HTTP clients bound to different loopback source
// addresses. One source address has one ephemeral port range (about 28,000
// ports by default), so spreading sessions over 127.0.0.x lets a run go
// past it.
type dialers struct {
	clients []*http.Client
	next    int
}

// newDialers builds one client per source address; none bind any address
// (the kernel picks), which is the only option for a ::1 target.
func newDialers(sources []string, timeout time.Duration) (*dialers, error) {
	d := &dialers{}
	if len(sources) == 0 {
		sources = []string{""}
	}
	for _, s := range sources {
		nd := &net.Dialer{Timeout: timeout}
		if s != "" {
			ip := net.ParseIP(s)
			if ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("source address %q: %w", s, ErrNotLoopback)
			}
			nd.LocalAddr = &net.TCPAddr{IP: ip}
		}
		d.clients = append(d.clients, &http.Client{Transport: &http.Transport{
			DialContext:         nd.DialContext,
			ForceAttemptHTTP2:   false,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		}})
	}
	return d, nil
}

// pick returns the next client round robin; callers serialise.
func (d *dialers) pick() *http.Client {
	c := d.clients[d.next%len(d.clients)]
	d.next++
	return c
}

// mqttConn is one MQTT 5 connection over a WebSocket (subprotocol "mqtt"),
// read as a byte stream so packets may span or share WebSocket messages.
//
// It reads and writes whole messages with coder/websocket's Reader and
// Write rather than through websocket.NetConn: NetConn arms a context timer
// on every read and write, which at tens of thousands of events a second
// was a fifth of the load generator's CPU. Deadlines are needed only around
// CONNECT and SUBSCRIBE (within).
type mqttConn struct {
	ws  *websocket.Conn
	br  *bufio.Reader
	buf []byte
	msg io.Reader // the WebSocket message being read
}

// Read serves the packet reader: the binary messages as one byte stream.
func (c *mqttConn) Read(p []byte) (int, error) {
	for {
		if c.msg == nil {
			typ, r, err := c.ws.Reader(context.Background())
			if err != nil {
				return 0, err
			}
			if typ != websocket.MessageBinary {
				return 0, fmt.Errorf("unexpected %v message (MQTT uses binary)", typ)
			}
			c.msg = r
		}
		n, err := c.msg.Read(p)
		if errors.Is(err, io.EOF) {
			c.msg = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// within runs f with the connection bounded by deadline: past it the
// WebSocket is closed, which fails the pending read or write, and within
// reports true. (A context deadline would do the same in coder/websocket,
// and would also close the connection when the context is released while a
// message is half read.)
func (c *mqttConn) within(deadline time.Time, f func()) (timedOut bool) {
	var fired atomic.Bool
	t := time.AfterFunc(time.Until(deadline), func() {
		fired.Store(true)
		_ = c.ws.CloseNow()
	})
	f()
	return !t.Stop() && fired.Load()
}

// connError is a failed connect with a short reason for the result table.
type connError struct {
	Reason string
	Err    error
}

func (e *connError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *connError) Unwrap() error { return e.Err }

// reasonOf names the cause of a failed connect.
func reasonOf(err error) string {
	var ce *connError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return classifyNet(err)
}

func classifyNet(err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.As(err, &errno):
		return "errno_" + errnoName(errno)
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "other"
	}
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.ECONNREFUSED:
		return "ECONNREFUSED"
	case syscall.ECONNRESET:
		return "ECONNRESET"
	case syscall.EMFILE:
		return "EMFILE"
	case syscall.EADDRNOTAVAIL:
		return "EADDRNOTAVAIL"
	case syscall.EPIPE:
		return "EPIPE"
	default:
		return strconv.Itoa(int(e))
	}
}

// dialMQTT opens the WebSocket. ctx bounds the handshake only; the
// connection lives until Close.
func dialMQTT(ctx context.Context, client *http.Client, wsURL, origin string) (*mqttConn, error) {
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ws, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		HTTPClient:      client,
		HTTPHeader:      h,
		Subprotocols:    []string{"mqtt"},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &connError{Reason: "http_" + strconv.Itoa(resp.StatusCode), Err: err}
		}
		return nil, &connError{Reason: "dial_" + classifyNet(err), Err: err}
	}
	ws.SetReadLimit(maxPacket + 1024)
	// The connection's own context: it ends with Close, not with ctx.
	c := &mqttConn{ws: ws}
	c.br = bufio.NewReaderSize(c, 512)
	return c, nil
}

// write sends b as one WebSocket message.
func (c *mqttConn) write(b []byte) error {
	return c.ws.Write(context.Background(), websocket.MessageBinary, b)
}

func (c *mqttConn) read() (packet, error) { return readPacket(c.br, &c.buf) }

// exchange writes one request packet and reads the reply before deadline;
// failures are connErrors named write_… or replyReason… plus the cause.
func (c *mqttConn) exchange(deadline time.Time, req []byte, replyReason string) (packet, error) {
	var p packet
	var werr, rerr error
	timedOut := c.within(deadline, func() {
		if werr = c.write(req); werr == nil {
			p, rerr = c.read()
		}
	})
	cause := func(err error) string {
		if timedOut {
			return "timeout"
		}
		return classifyNet(err)
	}
	switch {
	case werr != nil:
		return p, &connError{Reason: "write_" + cause(werr), Err: werr}
	case rerr != nil:
		return p, &connError{Reason: replyReason + cause(rerr), Err: rerr}
	}
	return p, nil
}

// connect sends CONNECT and waits for CONNACK; it returns the server's
// Receive Maximum (65535 when not announced).
func (c *mqttConn) connect(deadline time.Time, clientID, user, pass string, keepAlive uint16) (uint16, error) {
	p, err := c.exchange(deadline, appendConnect(nil, clientID, user, pass, keepAlive), "connack_")
	if err != nil {
		return 0, err
	}
	if p.typ != pktConnack {
		return 0, &connError{Reason: "connack_unexpected", Err: fmt.Errorf("got packet type %d", p.typ)}
	}
	if p.reason != 0 {
		return 0, &connError{Reason: fmt.Sprintf("connack_0x%02x", p.reason), Err: errors.New("connect refused")}
	}
	if p.recvMax == 0 {
		p.recvMax = 0xffff
	}
	return p.recvMax, nil
}

// subscribe sends SUBSCRIBE and waits for a granted SUBACK.
func (c *mqttConn) subscribe(deadline time.Time, filter string, qos byte) error {
	p, err := c.exchange(deadline, appendSubscribe(nil, 1, filter, qos), "suback_")
	if err != nil {
		return err
	}
	if p.typ != pktSuback {
		return &connError{Reason: "suback_unexpected", Err: fmt.Errorf("got packet type %d", p.typ)}
	}
	if p.reason > 2 {
		return &connError{Reason: fmt.Sprintf("suback_0x%02x", p.reason), Err: errors.New("subscribe refused")}
	}
	return nil
}

// close sends DISCONNECT and closes without waiting for the peer's close
// frame (thousands of sessions end at once).
func (c *mqttConn) close() {
	c.within(time.Now().Add(time.Second), func() { _ = c.write(disconnect) })
	_ = c.ws.CloseNow()
}

// wsURLFor turns an http(s) base URL into its /mqtt WebSocket URL.
func wsURLFor(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", base, err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
		return u.String(), nil
	default:
		return "", fmt.Errorf("url %q: want http, https, ws or wss", base)
	}
	u.Path = "/mqtt"
	return u.String(), nil
}
