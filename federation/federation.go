// Package federation lets several gateway replicas, each with its own
// embedded broker, serve browsers as one: every replica is a client of one
// upstream MQTT broker (Mosquitto, EMQX, …), where all events are published,
// and subscribes there only to the channels its own browsers hold. What
// arrives is republished into the embedded broker, retain flag and message
// expiry kept.
//
// A channel is followed from the browser's first SUBSCRIBE (whose SUBACK
// waits for the upstream SUBACK, so nothing published after it is missed)
// until a grace period after its last connection on this replica ends, so
// a reload or a network blip does not churn the upstream subscription.
// After a lost upstream connection every followed channel is subscribed
// again.
package federation

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/broker"
	"github.com/heraldgw/herald/internal/lifecycle"
	"github.com/heraldgw/herald/internal/mqttclient"
	"github.com/heraldgw/herald/revocation"
	"github.com/heraldgw/herald/topic"
)

// Defaults for zero Config fields.
const (
	// DefaultGrace is how long a channel stays subscribed upstream after
	// its last browser connection on this replica ended.
	DefaultGrace = 30 * time.Second
	// DefaultSessionExpiry is how long the upstream broker keeps this
	// replica's subscriptions and queues its events while it is away.
	DefaultSessionExpiry = 5 * time.Minute
	// DefaultMaxReconnectDelay caps the backoff between connection attempts.
	DefaultMaxReconnectDelay = 5 * time.Second
	// batch is the most filters sent in one SUBSCRIBE or UNSUBSCRIBE.
	batch = 64
)

// Local is the embedded broker events are republished into
// (*broker.Broker).
type Local interface {
	Publish(ctx context.Context, name string, payload []byte, opt broker.PublishOptions) error
}

// Config configures a Federation. Zero fields take the documented defaults.
type Config struct {
	// URL of the upstream broker: mqtt://, mqtts://, ws:// or wss://. Required.
	URL string
	// ClientID on the upstream broker; must be unique per replica. Required.
	ClientID string
	// Username, Password and TLS authenticate to the upstream broker.
	Username, Password string
	TLS                *tls.Config
	// Grace, SessionExpiry and MaxReconnectDelay: see the defaults.
	Grace, SessionExpiry, MaxReconnectDelay time.Duration
	// Logger gets one line per upstream connection change. Default
	// slog.Default().
	Logger *slog.Logger
	// Metrics registers the collectors; nil registers none.
	Metrics prometheus.Registerer
	// OnRevocation, if set, is called with every revocation record another
	// replica announced (see Announce); it must not block for long.
	OnRevocation func(revocation.Record)
}

// ErrConfig is returned (wrapped) by New for an unusable configuration.
var ErrConfig = errors.New("federation: bad config")

// Federation follows the channels of one embedded broker on an upstream
// broker. It implements broker.ChannelObserver; register it with
// (*broker.Broker).ObserveChannels and run it with Run.
type Federation struct {
	cfg   Config
	url   *url.URL
	local Local
	log   *slog.Logger
	m     *metrics

	up        atomic.Bool
	revSynced atomic.Bool // revocations received since the last connect
	cm        atomic.Pointer[autopaho.ConnectionManager]

	mu      sync.Mutex
	chans   map[string]*follow // by channel filter
	leaving map[string]struct{}
	ops     []op
	resync  bool
	stale   []string // unsubscribes that could not be sent
	wake    chan struct{}
	once    lifecycle.Once // Run may be called once
}

var _ broker.ChannelObserver = (*Federation)(nil)

// follow is one channel followed upstream.
type follow struct {
	refs    int
	leaveAt time.Time
	ready   chan struct{} // closed once the upstream SUBSCRIBE was answered or given up
}

type op struct {
	subscribe bool
	filter    string
	done      chan struct{} // subscribe only
}

// New checks cfg. Nothing connects until Run.
func New(cfg Config, local Local) (*Federation, error) {
	u, err := mqttclient.ParseURL(cfg.URL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("upstream: %w: %w", err, ErrConfig)
	case cfg.ClientID == "":
		return nil, fmt.Errorf("client id is required: %w", ErrConfig)
	case local == nil:
		return nil, fmt.Errorf("no local broker: %w", ErrConfig)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = DefaultSessionExpiry
	}
	if cfg.MaxReconnectDelay <= 0 {
		cfg.MaxReconnectDelay = DefaultMaxReconnectDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &Federation{
		cfg: cfg, url: u, local: local, log: cfg.Logger.With("component", "federation"), m: newMetrics(),
		chans: map[string]*follow{}, leaving: map[string]struct{}{}, wake: make(chan struct{}, 1),
	}
	if cfg.Metrics != nil {
		if err := f.m.register(cfg.Metrics, f); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Ready reports whether the upstream connection is up and, when
// revocations are shared, every revocation in force has been received.
func (f *Federation) Ready() bool {
	return f.up.Load() && (f.cfg.OnRevocation == nil || f.revSynced.Load())
}

// Channels returns the number of channels followed upstream.
func (f *Federation) Channels() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.chans)
}

// JoinChannel follows the channel upstream and, while connected, waits for
// the upstream SUBACK (or ctx).
func (f *Federation) JoinChannel(ctx context.Context, app, channel string) {
	filter := topic.ChannelFilter(app, channel)
	f.mu.Lock()
	fl := f.chans[filter]
	if fl == nil {
		fl = &follow{ready: make(chan struct{})}
		f.chans[filter] = fl
		f.enqueue(op{subscribe: true, filter: filter, done: fl.ready})
	}
	fl.refs++
	delete(f.leaving, filter)
	ready := fl.ready
	f.mu.Unlock()
	if !f.up.Load() {
		return // subscribed with everything else when the connection comes up
	}
	select {
	case <-ready:
	case <-ctx.Done():
		f.log.Warn("upstream subscribe slow; granting the browser's subscription anyway", "filter", filter)
	}
}

// LeaveChannel stops following the channel after the grace period, unless
// another connection joins it meanwhile.
func (f *Federation) LeaveChannel(app, channel string) {
	filter := topic.ChannelFilter(app, channel)
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := f.chans[filter]
	if fl == nil {
		return
	}
	if fl.refs--; fl.refs <= 0 {
		fl.refs = 0
		fl.leaveAt = time.Now().Add(f.cfg.Grace)
		f.leaving[filter] = struct{}{}
	}
}

// enqueue adds an upstream operation; f.mu is held.
func (f *Federation) enqueue(o op) {
	f.ops = append(f.ops, o)
	f.signal()
}

func (f *Federation) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run keeps the upstream connection, applies subscription changes in order
// and republishes what arrives, until ctx ends. Run may be called once.
func (f *Federation) Run(ctx context.Context) error {
	if err := f.once.Start("federation"); err != nil {
		return err
	}

	cm, err := autopaho.NewConnection(ctx, f.clientConfig(ctx))
	if err != nil {
		return fmt.Errorf("federation: %w", err)
	}
	f.cm.Store(cm)
	defer func() {
		<-cm.Done()
		f.up.Store(false)
	}()

	tick := time.NewTicker(min(max(f.cfg.Grace/4, 20*time.Millisecond), 5*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		case now := <-tick.C:
			f.expire(now)
		}
		f.flush(ctx, cm)
	}
}

// expire queues unsubscribes for channels whose grace period is over.
func (f *Federation) expire(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for filter := range f.leaving {
		fl := f.chans[filter]
		if fl != nil && fl.refs == 0 && now.After(fl.leaveAt) {
			delete(f.chans, filter)
			delete(f.leaving, filter)
			f.enqueue(op{filter: filter})
		}
	}
}

// flush sends the queued operations in order, batching runs of the same kind.
func (f *Federation) flush(ctx context.Context, cm *autopaho.ConnectionManager) {
	for ctx.Err() == nil {
		f.mu.Lock()
		ops := f.ops
		f.ops = nil
		resync := f.resync
		f.resync = false
		var all, stale []string
		if resync {
			for filter := range f.chans {
				all = append(all, filter)
			}
			stale, f.stale = f.stale, nil
		}
		f.mu.Unlock()
		if len(ops) == 0 && !resync {
			return
		}
		if resync {
			if err := f.subscribeRevocations(ctx, cm); err != nil {
				f.log.Warn("upstream revocations subscribe failed; retried on reconnect", "error", err)
			}
			if err := f.unsubscribe(ctx, cm, stale); err != nil {
				f.keepStale(stale)
			}
			if err := f.subscribe(ctx, cm, all); err != nil {
				f.log.Warn("upstream resubscribe failed; retried on reconnect", "channels", len(all), "error", err)
			}
		}
		for i := 0; i < len(ops); {
			j := i
			var filters []string
			for j < len(ops) && ops[j].subscribe == ops[i].subscribe && len(filters) < batch {
				filters = append(filters, ops[j].filter)
				j++
			}
			if ops[i].subscribe {
				if err := f.subscribe(ctx, cm, filters); err != nil && f.up.Load() {
					f.log.Warn("upstream subscribe failed", "channels", len(filters), "error", err)
				}
				for _, o := range ops[i:j] {
					close(o.done)
				}
			} else if err := f.unsubscribe(ctx, cm, filters); err != nil {
				f.keepStale(filters)
			}
			i = j
		}
	}
}

func (f *Federation) keepStale(filters []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fl := range filters {
		if f.chans[fl] == nil { // not joined again meanwhile
			f.stale = append(f.stale, fl)
		}
	}
}

func (f *Federation) subscribe(ctx context.Context, cm *autopaho.ConnectionManager, filters []string) error {
	for len(filters) > 0 {
		n := min(len(filters), batch)
		s := &paho.Subscribe{}
		for _, fl := range filters[:n] {
			// Retain handling 1: retained events come only with a new
			// subscription, not again on every resubscribe.
			s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: fl, QoS: 1, RetainHandling: 1, RetainAsPublished: true})
		}
		sa, err := cm.Subscribe(ctx, s)
		if err != nil {
			return err
		}
		for i, code := range sa.Reasons {
			if code >= 0x80 {
				f.log.Error("upstream refused subscription", "filter", filters[i], "reason_code", fmt.Sprintf("0x%02x", code))
			}
		}
		f.m.subscribes.Add(float64(n))
		filters = filters[n:]
	}
	return nil
}

func (f *Federation) unsubscribe(ctx context.Context, cm *autopaho.ConnectionManager, filters []string) error {
	for len(filters) > 0 {
		n := min(len(filters), batch)
		if _, err := cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters[:n]}); err != nil {
			return err
		}
		f.m.unsubscribes.Add(float64(n))
		filters = filters[n:]
	}
	return nil
}

func (f *Federation) clientConfig(ctx context.Context) autopaho.ClientConfig {
	u := *f.url
	return autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{&u},
		TlsCfg:                        f.cfg.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true, // drop what a previous process with this id followed
		SessionExpiryInterval:         uint32(f.cfg.SessionExpiry / time.Second),
		ReconnectBackoff:              mqttclient.Backoff(f.cfg.MaxReconnectDelay),
		ConnectUsername:               f.cfg.Username,
		ConnectPassword:               []byte(f.cfg.Password),
		OnConnectionUp: func(_ *autopaho.ConnectionManager, ca *paho.Connack) {
			f.revSynced.Store(false)
			f.up.Store(true)
			f.mu.Lock()
			f.resync = true
			n := len(f.chans)
			f.mu.Unlock()
			f.signal()
			f.log.Info("upstream connected", "url", f.url.Redacted(), "channels", n, "session_present", ca.SessionPresent)
		},
		OnConnectionDown: func() bool {
			f.up.Store(false)
			f.revSynced.Store(false)
			f.log.Warn("upstream connection lost", "url", f.url.Redacted())
			return true
		},
		OnConnectError: func(err error) {
			f.log.Warn("upstream connect failed", "url", f.url.Redacted(), "error", err)
		},
		ClientConfig: paho.ClientConfig{
			ClientID: f.cfg.ClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				if isRevocation(pr.Packet.Topic) {
					f.revoked(pr.Packet)
				} else {
					f.republish(ctx, pr.Packet)
				}
				return true, nil
			}},
		},
	}
}

// republish hands an upstream message to the embedded broker.
func (f *Federation) republish(ctx context.Context, p *paho.Publish) {
	if _, err := topic.Parse(p.Topic); err != nil {
		f.m.dropped.Inc()
		return
	}
	opt := broker.PublishOptions{QoS: 1, Retain: p.Retain}
	if p.Properties != nil && p.Properties.MessageExpiry != nil {
		opt.Expiry = time.Duration(*p.Properties.MessageExpiry) * time.Second
	}
	if err := f.local.Publish(ctx, p.Topic, p.Payload, opt); err != nil {
		f.m.dropped.Inc()
		f.log.Warn("republish into the embedded broker failed", "topic", p.Topic, "error", err)
		return
	}
	f.m.received.Inc()
}
