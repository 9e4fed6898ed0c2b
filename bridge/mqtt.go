package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/lifecycle"
	"github.com/heraldgw/herald/internal/mqttclient"
)

// Defaults for zero MQTTConfig fields.
const (
	// DefaultOutboxMax bounds the events waiting for the broker per
	// connection. At ~1 KB per event that is ~100 MB of disk at most.
	DefaultOutboxMax = 100_000
	// DefaultMaxInflight is the unacknowledged QoS 1 window per connection;
	// also AWS IoT Core's limit, which refuses more.
	DefaultMaxInflight = 100
	// DefaultKeepAlive is the MQTT keep-alive sent in CONNECT.
	DefaultKeepAlive = 30 * time.Second
	// DefaultAckTimeout is how long a publish waits for its PUBACK before it
	// is sent again.
	DefaultAckTimeout = 20 * time.Second
	// DefaultMaxReconnectDelay caps the backoff between connection attempts.
	DefaultMaxReconnectDelay = 10 * time.Second
	// IoTCoreALPN is the ALPN protocol AWS IoT Core expects for MQTT with a
	// client certificate on port 443.
	IoTCoreALPN = "x-amzn-mqtt-ca"
	// IoTCorePublishRate is AWS IoT Core's publish limit per connection.
	IoTCorePublishRate = 100
)

// MQTTConfig configures an external-broker publisher. Zero fields take the
// documented defaults.
type MQTTConfig struct {
	// URL of the broker: mqtt://host:1883, mqtts://host:8883 (TLS),
	// ws://host/mqtt or wss://host/mqtt. Required.
	URL string
	// ClientID of the connection; with several connections "-{i}" is
	// appended (i from 1). Required. On the embedded broker a service's id
	// must start "svc-".
	ClientID string
	// Username and Password for the broker (embedded broker: app id and
	// API key). Empty sends none (AWS IoT Core with a client certificate).
	Username, Password string
	// TLS is used for mqtts:// and wss://: root CAs and, for mutual TLS, the
	// client certificate (AWS IoT Core). For mqtts:// on port 443 without
	// NextProtos, ALPN "x-amzn-mqtt-ca" is offered, which IoT Core needs to
	// take MQTT with a certificate on 443. Nil means system roots, no client
	// certificate.
	TLS *tls.Config
	// QueueDir holds the outbound queue: every event stays there until the
	// broker acknowledged it, so nothing is lost while the broker is away
	// or when this process restarts. Each connection uses QueueDir/{i}.
	// Empty keeps the queue in memory (lost on exit).
	QueueDir string
	// OutboxMax bounds the queue per connection; Publish then fails with
	// ErrQueueFull. Default DefaultOutboxMax.
	OutboxMax int
	// Connections is how many connections share the load. Events of one
	// channel always use the same connection (hash of app/channel), so
	// their order is kept. AWS IoT Core allows 100 publishes/s per
	// connection. Default 1.
	Connections int
	// MaxInflight is the unacknowledged window per connection, at most 100.
	// Default DefaultMaxInflight.
	MaxInflight int
	// PublishRate limits publishes per second per connection (e.g.
	// IoTCorePublishRate); zero means no limit.
	PublishRate float64
	// KeepAlive, AckTimeout and MaxReconnectDelay tune the connection.
	// Defaults DefaultKeepAlive, DefaultAckTimeout, DefaultMaxReconnectDelay.
	KeepAlive, AckTimeout, MaxReconnectDelay time.Duration
	// Name labels this publisher's metrics and logs ("bridge" by default);
	// several publishers in one process need distinct names.
	Name string
	// Logger gets one line per connection change and per refused event.
	// Default slog.Default().
	Logger *slog.Logger
	// Metrics registers the collectors; nil registers none.
	Metrics prometheus.Registerer
}

// ErrConfig is returned (wrapped) by NewMQTT for an unusable configuration.
var ErrConfig = errors.New("bridge: bad config")

func (c MQTTConfig) withDefaults() (MQTTConfig, *url.URL, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrConfig)
	}
	u, err := mqttclient.ParseURL(c.URL)
	if err != nil {
		return c, nil, fmt.Errorf("%w: %w", err, ErrConfig)
	}
	if c.ClientID == "" {
		return c, nil, bad("client id is required")
	}
	if c.OutboxMax <= 0 {
		c.OutboxMax = DefaultOutboxMax
	}
	if c.Connections <= 0 {
		c.Connections = 1
	}
	if c.MaxInflight <= 0 || c.MaxInflight > DefaultMaxInflight {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.MaxReconnectDelay <= 0 {
		c.MaxReconnectDelay = DefaultMaxReconnectDelay
	}
	if c.Name == "" {
		c.Name = "bridge"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if u.Scheme == "mqtts" || u.Scheme == "wss" {
		if c.TLS == nil {
			c.TLS = &tls.Config{}
		} else {
			c.TLS = c.TLS.Clone()
		}
		if c.TLS.ServerName == "" {
			c.TLS.ServerName = u.Hostname()
		}
		if c.TLS.MinVersion == 0 {
			c.TLS.MinVersion = tls.VersionTLS12
		}
		if u.Scheme == "mqtts" && u.Port() == "443" && len(c.TLS.NextProtos) == 0 {
			c.TLS.NextProtos = []string{IoTCoreALPN}
		}
	}
	return c, u, nil
}

// MQTT publishes events to an external MQTT 5 broker (AWS IoT Core,
// Mosquitto, EMQX, or the embedded broker of another Herald process) over
// one or more connections, through a bounded, ordered outbound queue.
//
// Publish returns once the event is queued (on disk when QueueDir is set);
// Run delivers the queue, QoS 1, and removes each event only when the
// broker acknowledged it. Delivery is at least once: after a lost
// connection the unacknowledged events are sent again, and subscribers
// dedupe on the event id. Events of one channel are delivered in the order
// of the Publish calls, one at a time.
type MQTT struct {
	cfg    MQTTConfig
	url    *url.URL
	log    *slog.Logger
	lanes  []*lane
	m      *mqttMetrics
	closed atomic.Bool

	once lifecycle.Once // Run may be called once
}

var _ Publisher = (*MQTT)(nil)

// NewMQTT checks cfg and opens the outbound queues (events left by a
// previous run are delivered first). Nothing connects until Run. ctx bounds
// the opening only.
func NewMQTT(ctx context.Context, cfg MQTTConfig) (*MQTT, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg, u, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &MQTT{cfg: cfg, url: u, log: cfg.Logger.With("component", "bridge", "bridge", cfg.Name), m: newMQTTMetrics()}
	for i := range cfg.Connections {
		dir := ""
		if cfg.QueueDir != "" {
			dir = filepath.Join(cfg.QueueDir, strconv.Itoa(i+1))
		}
		ob, err := openOutbox(dir, cfg.OutboxMax)
		if err != nil {
			return nil, err
		}
		id := cfg.ClientID
		if cfg.Connections > 1 {
			id += "-" + strconv.Itoa(i+1)
		}
		b.lanes = append(b.lanes, newLane(b, id, ob))
	}
	if cfg.Metrics != nil {
		if err := b.m.register(cfg.Metrics, cfg.Name, b); err != nil {
			return nil, err
		}
	}
	if n := b.Queued(); n > 0 {
		b.log.Info("bridge queue restored", "queued", n, "dir", cfg.QueueDir)
	}
	return b, nil
}

// Publish validates e and queues it for its channel's connection: QoS 1,
// final events retained with event.FinalExpiry as message expiry. It fails
// with ErrQueueFull when that connection's queue is full and ErrClosed
// after Close.
func (b *MQTT) Publish(ctx context.Context, e *event.Envelope) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return ErrClosed
	}
	if err := e.Validate(); err != nil {
		return err
	}
	payload, err := e.Encode()
	if err != nil {
		return err
	}
	m := &message{topic: e.Topic(), payload: payload}
	m.key = channelKey(m.topic)
	if e.Final() {
		m.retain, m.expiry = true, uint32(event.FinalExpiry/time.Second)
	}
	if err := b.lanes[b.pick(m.key)].ob.push(m); err != nil {
		if errors.Is(err, ErrQueueFull) {
			b.m.queueFull.Inc()
		}
		return fmt.Errorf("publish event %s to %s: %w", e.ID, m.topic, err)
	}
	return nil
}

func (b *MQTT) pick(key string) int {
	if len(b.lanes) == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(b.lanes)))
}

// Queued returns the number of events not yet acknowledged by the broker.
func (b *MQTT) Queued() int {
	n := 0
	for _, l := range b.lanes {
		n += l.ob.len()
	}
	return n
}

// Ready reports whether every connection is up.
func (b *MQTT) Ready() bool { return b.connectionsUp() == len(b.lanes) }

func (b *MQTT) connectionsUp() int {
	n := 0
	for _, l := range b.lanes {
		if l.up.Load() {
			n++
		}
	}
	return n
}

// Run connects and delivers the queue until ctx ends, reconnecting with
// backoff whenever a connection is lost. Events still queued at the end stay
// on disk for the next run (in memory they are lost, and logged). Run may be
// called once.
func (b *MQTT) Run(ctx context.Context) error {
	if err := b.once.Start("bridge"); err != nil {
		return err
	}

	var wg sync.WaitGroup
	errs := make([]error, len(b.lanes))
	for i, l := range b.lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.run(ctx)
		}()
	}
	wg.Wait()
	if n := b.Queued(); n > 0 {
		b.log.Warn("bridge stopped with events queued", "queued", n, "on_disk", b.cfg.QueueDir != "")
	}
	return errors.Join(errs...)
}

// Close makes later Publish calls fail with ErrClosed. Run ends with its
// context; Close does not stop it.
func (b *MQTT) Close() error {
	b.closed.Store(true)
	return nil
}
