package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/tenant"
)

// Defaults for zero Config fields.
const (
	// DefaultMaxConnections bounds connected clients. Every connection holds
	// one file descriptor, so the process fd limit (ulimit -n; 20,000 on the
	// development machines) is the real ceiling unless it is raised.
	DefaultMaxConnections = 100_000
	// DefaultMaxPacketSize is AWS IoT Core's payload limit, so anything that
	// works here also works against IoT Core.
	DefaultMaxPacketSize = 128 << 10
	// DefaultKeepAliveMin is the shortest keep-alive the broker enforces.
	// Background browser tabs run timers at most once a minute, so a client
	// asking for less is tolerated as if it had asked for a minute.
	DefaultKeepAliveMin = 60 * time.Second
	// DefaultKeepAliveMax is the longest keep-alive granted; clients asking
	// for more (or for none) are told this value.
	DefaultKeepAliveMax = 1200 * time.Second
	// DefaultMaxInflight is the Receive Maximum announced to clients.
	DefaultMaxInflight = 32
	// DefaultMaxQueued is the per-client outbound queue length.
	DefaultMaxQueued = 64
	// DefaultMaxStored bounds the QoS 1 messages one session keeps (in flight
	// or waiting while the client is offline).
	DefaultMaxStored = 256
	// DefaultMaxSubscriptions bounds the filters one browser session
	// holds (it needs one), DefaultMaxServiceSubscriptions one service
	// session (which may follow many channels).
	DefaultMaxSubscriptions        = 16
	DefaultMaxServiceSubscriptions = 4096
	// DefaultSessionExpiry is the longest a disconnected persistent session
	// is kept.
	DefaultSessionExpiry = 24 * time.Hour
	// DefaultMessageExpiry bounds how long any message (retained or queued)
	// is kept when its publisher set no shorter expiry.
	DefaultMessageExpiry = 24 * time.Hour
	// DefaultConnectRatePerIP and DefaultConnectBurst bound new connections
	// per source address (a NAT can hide many browsers behind one address).
	DefaultConnectRatePerIP = 20
	DefaultConnectBurst     = 100
	// DefaultConnectTimeout is how long a new connection may take to send
	// its CONNECT packet.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds one write to a client's socket.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultReadBufferSize is the per-connection MQTT read buffer. It only
	// batches fixed headers and small packets: a larger body is read
	// straight into its own slice. Every idle connection keeps it.
	DefaultReadBufferSize = 128
	// DefaultWriteBufferSize is the buffer used while outbound packets queue
	// up behind each other.
	DefaultWriteBufferSize = 1024
)

// WebSocket read models (Config.WebSocketIO).
const (
	// WebSocketEpoll reads every WebSocket from a few epoll goroutines
	// (one per CPU): an idle connection holds no reader goroutine and no
	// read buffer. Linux only; the default there.
	WebSocketEpoll = "epoll"
	// WebSocketGoroutine gives each WebSocket a reading goroutine of its own
	// (coder/websocket's net.Conn). The default elsewhere.
	WebSocketGoroutine = "goroutine"
)

// ErrWebSocketIO is returned by New for an unknown or unavailable
// Config.WebSocketIO.
var ErrWebSocketIO = errors.New("broker: unknown or unavailable websocket io model")

// Config configures a Broker. Zero fields take the documented defaults.
type Config struct {
	// Registry authenticates apps, services and browser tokens. Required.
	Registry *tenant.Registry
	// DataDir holds persistent sessions and retained messages
	// (DataDir/broker.db). Empty keeps everything in memory (tests).
	DataDir string
	// TCPAddr is an optional plain MQTT listener such as "127.0.0.1:1883".
	TCPAddr string
	// MaxConnections bounds connected clients. Default DefaultMaxConnections.
	MaxConnections int
	// MaxPacketSize bounds one MQTT packet in either direction, in bytes.
	// Default DefaultMaxPacketSize. A client that sends a larger packet is
	// disconnected (MQTT 5: DISCONNECT 0x95).
	MaxPacketSize int
	// KeepAliveMin and KeepAliveMax bound the effective keep-alive. A client
	// asking for less than KeepAliveMin keeps pinging at its own rate and is
	// only dropped after 1.5×KeepAliveMin of silence. A client asking for
	// more than KeepAliveMax, or for none, is told KeepAliveMax (MQTT 5
	// Server Keep Alive); a 3.1.1 client cannot be told and is dropped after
	// 1.5×KeepAliveMax of silence. Defaults 60 s and 1200 s.
	KeepAliveMin, KeepAliveMax time.Duration
	// MaxInflight is the Receive Maximum announced to clients: the most
	// unacknowledged QoS 1 messages a client may send. Messages to a client
	// are bounded by the client's own Receive Maximum if it announces one,
	// and otherwise by MaxQueued. Default DefaultMaxInflight.
	MaxInflight int
	// MaxQueued is the per-client outbound queue. When it is full the
	// client is not keeping up: it is disconnected
	// (herald_broker_messages_dropped_total{reason="queue_full"}). A
	// persistent session keeps the QoS 1 message that found the queue full,
	// so the client catches up, in order, when it reconnects; a clean
	// session loses it. Default DefaultMaxQueued.
	MaxQueued int
	// MaxStored bounds the QoS 1 messages kept per session (in flight, or
	// waiting while the client is offline); further ones are dropped and
	// counted (herald_broker_session_dropped_total). Default DefaultMaxStored.
	MaxStored int
	// MaxSubscriptions and MaxServiceSubscriptions bound the filters one
	// browser, or one service, session holds; further new filters get
	// SUBACK 0x87 (0x80 on 3.1.1), re-subscribing an existing one is
	// always allowed. Defaults DefaultMaxSubscriptions and
	// DefaultMaxServiceSubscriptions.
	MaxSubscriptions, MaxServiceSubscriptions int
	// SessionExpiry is the longest a disconnected persistent session is
	// kept (MQTT 5 session expiry is capped to it; 3.1.1 clean=false
	// sessions get it). Default DefaultSessionExpiry.
	SessionExpiry time.Duration
	// MessageExpiry caps how long a retained or queued message lives.
	// Default DefaultMessageExpiry.
	MessageExpiry time.Duration
	// ConnectRatePerIP and ConnectBurst limit new connections per source IP
	// (token bucket). Zero takes the defaults; a negative rate disables the
	// limit (e.g. behind a proxy that hides client addresses).
	ConnectRatePerIP float64
	ConnectBurst     int
	// ConnectTimeout bounds the wait for a new connection's CONNECT packet.
	// Default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// WriteTimeout bounds one write to a client. A client that reads
	// nothing for that long is disconnected (its persistent session keeps
	// what was not acknowledged): mochi holds a client's lock while it
	// writes, so a stuck write would otherwise hold up every QoS 1 publish
	// to that client for up to 1.5 keep-alives. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// ReadBufferSize and WriteBufferSize size the per-connection MQTT
	// buffers. Defaults DefaultReadBufferSize and DefaultWriteBufferSize.
	ReadBufferSize, WriteBufferSize int
	// CompactMinFree and CompactInterval: every CompactInterval (and at
	// start), the storage file (DataDir/broker.db) is rewritten without
	// its free pages once they come to CompactMinFree bytes and half the
	// file, so the file shrinks again after a burst of retained or queued
	// messages has expired or been delivered. Defaults
	// DefaultCompactMinFree and DefaultCompactInterval; a negative
	// CompactMinFree never compacts.
	CompactMinFree  int64
	CompactInterval time.Duration
	// WebSocketIO picks how WebSockets are read: WebSocketEpoll (default
	// on Linux) or WebSocketGoroutine (default elsewhere). Both use
	// coder/websocket for the opening handshake.
	WebSocketIO string
	// Logger receives one line per refused connect and per disconnect.
	// Default slog.Default().
	Logger *slog.Logger
	// Metrics registers the broker's collectors; nil registers none.
	Metrics prometheus.Registerer
}

// ErrNoRegistry is returned by New when Config.Registry is nil.
var ErrNoRegistry = errors.New("broker: config has no tenant registry")

func (c Config) withDefaults() (Config, error) {
	if c.Registry == nil {
		return c, ErrNoRegistry
	}
	setInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	setInt(&c.MaxConnections, DefaultMaxConnections)
	setInt(&c.MaxPacketSize, DefaultMaxPacketSize)
	setInt(&c.MaxInflight, DefaultMaxInflight)
	setInt(&c.MaxQueued, DefaultMaxQueued)
	setInt(&c.MaxStored, DefaultMaxStored)
	setInt(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	setInt(&c.MaxServiceSubscriptions, DefaultMaxServiceSubscriptions)
	setInt(&c.ConnectBurst, DefaultConnectBurst)
	setInt(&c.ReadBufferSize, DefaultReadBufferSize)
	setInt(&c.WriteBufferSize, DefaultWriteBufferSize)
	setDur(&c.KeepAliveMin, DefaultKeepAliveMin)
	setDur(&c.KeepAliveMax, DefaultKeepAliveMax)
	setDur(&c.SessionExpiry, DefaultSessionExpiry)
	setDur(&c.MessageExpiry, DefaultMessageExpiry)
	setDur(&c.ConnectTimeout, DefaultConnectTimeout)
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.CompactInterval, DefaultCompactInterval)
	if c.CompactMinFree == 0 {
		c.CompactMinFree = DefaultCompactMinFree
	}
	if c.ConnectRatePerIP == 0 {
		c.ConnectRatePerIP = DefaultConnectRatePerIP
	}
	if c.MaxInflight > 0xffff {
		c.MaxInflight = 0xffff
	}
	if c.MaxStored > 0xffff {
		c.MaxStored = 0xffff
	}
	if c.MaxStored < c.MaxInflight {
		c.MaxStored = c.MaxInflight
	}
	if c.KeepAliveMax > 0xffff*time.Second {
		c.KeepAliveMax = 0xffff * time.Second
	}
	if c.KeepAliveMin > c.KeepAliveMax {
		c.KeepAliveMin = c.KeepAliveMax
	}
	if c.ReadBufferSize < 16 {
		c.ReadBufferSize = 16
	}
	switch c.WebSocketIO {
	case "":
		c.WebSocketIO = WebSocketGoroutine
		if pollerAvailable {
			c.WebSocketIO = WebSocketEpoll
		}
	case WebSocketGoroutine:
	case WebSocketEpoll:
		if !pollerAvailable {
			return c, fmt.Errorf("%w: %q needs Linux", ErrWebSocketIO, c.WebSocketIO)
		}
	default:
		return c, fmt.Errorf("%w: %q (want %q or %q)", ErrWebSocketIO, c.WebSocketIO, WebSocketEpoll, WebSocketGoroutine)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// capabilities are the MQTT limits and features the broker offers.
func capabilities(cfg Config) *mqtt.Capabilities {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(cfg.MaxConnections)
	caps.MaximumMessageExpiryInterval = int64(cfg.MessageExpiry / time.Second)
	caps.MaximumClientWritesPending = int32(cfg.MaxQueued)
	caps.MaximumSessionExpiryInterval = uint32(cfg.SessionExpiry / time.Second)
	caps.MaximumPacketSize = uint32(cfg.MaxPacketSize)
	caps.ReceiveMaximum = uint16(cfg.MaxInflight)
	caps.MaximumInflight = uint16(cfg.MaxStored)
	// Topic aliases would let a client publish under a name the ACL saw
	// only once; nothing here needs them.
	caps.TopicAliasMaximum = 0
	// AWS IoT Core offers QoS 0 and 1 only; staying within it keeps the
	// external-broker mode equivalent.
	caps.MaximumQos = 1
	caps.SharedSubAvailable = 0
	// A PUBACK says nothing but its reason (mochi would echo the
	// publisher's user properties and other properties).
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	caps.MinimumProtocolVersion = 4
	return caps
}
