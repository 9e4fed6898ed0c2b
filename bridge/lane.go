package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/time/rate"

	"github.com/heraldgw/herald/internal/mqttclient"
)

// retryPause is how long a publish that got no acknowledgement on a live
// connection (timeout, throttled) waits before it is handed out again.
const retryPause = time.Second

// pubackQuotaExceeded is the MQTT 5 PUBACK reason a throttling broker (AWS
// IoT Core) sends; the event is retried, not dropped.
const pubackQuotaExceeded = 0x97

// lane is one connection with its own outbound queue.
type lane struct {
	b     *MQTT
	id    string
	ob    *outbox
	limit *rate.Limiter // nil: no limit

	up     atomic.Bool
	mu     sync.Mutex
	conn   context.Context // live while the current connection is up; nil when down
	cancel context.CancelFunc
	upSig  chan struct{} // cap 1: a connection came up
}

func newLane(b *MQTT, id string, ob *outbox) *lane {
	l := &lane{b: b, id: id, ob: ob, upSig: make(chan struct{}, 1)}
	if b.cfg.PublishRate > 0 {
		l.limit = rate.NewLimiter(rate.Limit(b.cfg.PublishRate), 1)
	}
	return l
}

func (l *lane) clientConfig(ctx context.Context) autopaho.ClientConfig {
	cfg := l.b.cfg
	log := l.b.log.With("client_id", l.id)
	u := *l.b.url
	return autopaho.ClientConfig{
		ServerUrls: []*url.URL{&u},
		TlsCfg:     cfg.TLS,
		KeepAlive:  uint16(cfg.KeepAlive / time.Second),
		// No broker session: the outbox is the one place unacknowledged
		// events live, and it resends them after a reconnect. A session on
		// the broker would only add a second, unordered resend.
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         0,
		ReconnectBackoff:              mqttclient.Backoff(cfg.MaxReconnectDelay),
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               cfg.Username,
		ConnectPassword:               []byte(cfg.Password),
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			c.CleanStart = true
			return c, nil
		},
		OnConnectionUp: func(_ *autopaho.ConnectionManager, ca *paho.Connack) {
			l.mu.Lock()
			l.conn, l.cancel = context.WithCancel(ctx)
			l.mu.Unlock()
			l.up.Store(true)
			select {
			case l.upSig <- struct{}{}:
			default:
			}
			log.Info("bridge connected", "url", l.b.url.Redacted(), "queued", l.ob.len())
		},
		OnConnectionDown: func() bool {
			l.mu.Lock()
			if l.cancel != nil {
				l.cancel() // in-flight publishes stop waiting for their PUBACK
			}
			l.conn, l.cancel = nil, nil
			l.mu.Unlock()
			l.up.Store(false)
			log.Warn("bridge connection lost", "url", l.b.url.Redacted(), "queued", l.ob.len())
			return true
		},
		OnConnectError: func(err error) {
			log.Warn("bridge connect failed", "url", l.b.url.Redacted(), "error", err)
		},
		ClientConfig: paho.ClientConfig{
			ClientID:      l.id,
			PacketTimeout: cfg.AckTimeout,
			OnServerDisconnect: func(d *paho.Disconnect) {
				log.Warn("bridge disconnected by broker", "reason_code", fmt.Sprintf("0x%02x", d.ReasonCode))
			},
		},
	}
}

// current returns the context of the live connection, or nil.
func (l *lane) current() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn
}

// run keeps the connection and sends the outbox until ctx ends.
func (l *lane) run(ctx context.Context) error {
	cm, err := autopaho.NewConnection(ctx, l.clientConfig(ctx))
	if err != nil {
		return fmt.Errorf("bridge %s: %w", l.id, err)
	}
	var wg sync.WaitGroup // one per publish in flight
	slots := make(chan struct{}, l.b.cfg.MaxInflight)
	defer func() {
		wg.Wait()
		<-cm.Done()
		l.up.Store(false)
	}()
	for {
		conn := l.current()
		if conn == nil || conn.Err() != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-l.upSig:
			case <-time.After(time.Second): // the up signal may predate a drop
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-conn.Done():
			continue
		case slots <- struct{}{}:
		}
		m, err := l.ob.take()
		if err != nil {
			l.b.log.Error("bridge queue", "error", err)
		}
		if m == nil {
			<-slots
			select {
			case <-ctx.Done():
				return nil
			case <-conn.Done():
			case <-l.ob.wake:
			}
			continue
		}
		if l.limit != nil {
			if err := l.limit.Wait(conn); err != nil {
				l.ob.retry(m)
				<-slots
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			l.send(conn, cm, m)
		}()
	}
}

// send publishes one message and settles it in the outbox.
func (l *lane) send(ctx context.Context, cm *autopaho.ConnectionManager, m *message) {
	start := time.Now()
	pub := &paho.Publish{QoS: 1, Retain: m.retain, Topic: m.topic, Payload: m.payload}
	if m.expiry > 0 {
		exp := m.expiry
		pub.Properties = &paho.PublishProperties{MessageExpiry: &exp}
	}
	pr, err := cm.Publish(ctx, pub)
	switch {
	case err == nil:
		l.ob.done(m)
		l.b.m.published.Inc()
		l.b.m.latency.Observe(time.Since(start).Seconds())
	case pr != nil && pr.ReasonCode >= 0x80 && pr.ReasonCode != pubackQuotaExceeded,
		errors.Is(err, paho.ErrInvalidArguments):
		// The broker will never take it (not authorized, too large, …):
		// retrying would block the channel forever.
		code := -1
		if pr != nil {
			code = int(pr.ReasonCode)
		}
		l.b.log.Error("bridge event refused by broker, dropped", "topic", m.topic,
			"reason_code", fmt.Sprintf("0x%02x", code), "error", err)
		l.b.m.rejected.Inc()
		l.ob.done(m)
	default:
		l.b.m.retried.Inc()
		if ctx.Err() == nil {
			// Live connection but no PUBACK (timeout, throttled): pause so
			// a struggling broker is not hammered.
			t := time.NewTimer(retryPause)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		l.ob.retry(m)
	}
}
