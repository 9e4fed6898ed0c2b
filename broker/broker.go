// Package broker is Herald's embedded MQTT broker: mochi-mqtt extended
// through its hooks and public API only, with
//
//   - MQTT over WebSocket (github.com/coder/websocket) for browsers, served
//     by WebSocketHandler on the gateway's own HTTP server at /mqtt, and an
//     optional plain TCP listener for services;
//   - authentication and ACLs of docs/design.md: browsers connect with their
//     session token and may only subscribe inside their own channel and
//     never publish; services connect with their app's API key and may use
//     their own app's topics;
//   - persistent sessions and retained messages kept in a bbolt file;
//   - per-IP connect rate limits, bounded per-client queues and packet
//     sizes, Prometheus metrics and one log line per refused connect and per
//     disconnect.
package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/heraldgw/herald/internal/lifecycle"
)

// Listener ids as mochi sees them (also the "transport" log attribute).
const (
	listenerWS  = "ws"
	listenerTCP = "tcp"
)

// shutdownBudget is how long Run may take to stop once its context ends.
const shutdownBudget = 9 * time.Second

// ErrNotRunning is returned by Publish before Run has started serving or
// after it has stopped.
var ErrNotRunning = errors.New("broker: not running")

// Broker is the embedded MQTT broker. Create it with New and serve it with
// Run; WebSocketHandler and Publish may be used from any goroutine.
type Broker struct {
	cfg      Config
	log      *slog.Logger
	srv      *mqtt.Server
	inline   *mqtt.Client // publishes for Publish; bypasses the ACL
	store    *store       // sessions and retained messages (memory only without DataDir)
	quota    *quotaHook   // each app's retained and queued messages
	metrics  *metrics
	limiter  *ipLimiter
	expiries *expiries    // browser connections by token expiry
	direct   *directHook  // browsers out of mochi's topic index
	ln       net.Listener // nil when TCPAddr is empty

	// ctx bounds every WebSocket connection; cancelled at the very end of
	// shutdown so stragglers are cut.
	ctx    context.Context
	cancel context.CancelFunc

	ready atomic.Bool

	pollers  []*poller // WebSocketEpoll: started by Run
	pollNext atomic.Uint64
	pollWG   sync.WaitGroup

	mu      sync.Mutex
	closing bool
	live    map[*conn]struct{}      // connections being served
	waiters map[*conn]chan struct{} // closed when mochi is done with a connection (served)
	conns   sync.WaitGroup          // one per client connection goroutine
	bg      sync.WaitGroup          // accept loop and asynchronous kicks
	once    lifecycle.Once          // Run may be called once
}

// New checks cfg, opens the storage under cfg.DataDir and binds the TCP
// listener if one is configured. Nothing is served until Run.
func New(cfg Config) (*Broker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "broker"),
		metrics: newMetrics(),
		limiter: newIPLimiter(cfg.ConnectRatePerIP, cfg.ConnectBurst),
		live:    make(map[*conn]struct{}),
	}
	b.expiries = newExpiries()
	b.ctx, b.cancel = context.WithCancel(context.Background())

	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:             capabilities(cfg),
		ClientNetReadBufferSize:  cfg.ReadBufferSize,
		ClientNetWriteBufferSize: cfg.WriteBufferSize,
		// mochi logs per packet at Warn (quota reached, processing errors);
		// keep only its errors. Herald logs its own events.
		Logger: slog.New(levelHandler{min: slog.LevelError, h: cfg.Logger.Handler()}).With("component", "mochi"),
		// $SYS topics are not reachable by any client here (the ACL refuses
		// them); publish them rarely since each round reads MemStats.
		SysTopicResendInterval: 3600,
	})

	if err := b.addHooks(); err != nil {
		return nil, err
	}

	b.inline = b.srv.NewClient(nil, mqtt.LocalListener, "herald-inline", true)
	// Version 5 so message expiry applies to what Publish retains.
	b.inline.Properties.ProtocolVersion = 5

	if cfg.Metrics != nil {
		if err := errors.Join(b.metrics.register(cfg.Metrics, b.srv, b.store), b.quota.register(cfg.Metrics), b.store.registerCompaction(cfg.Metrics)); err != nil {
			b.closeStore()
			return nil, err
		}
	}
	if cfg.TCPAddr != "" {
		ln, err := net.Listen("tcp", cfg.TCPAddr)
		if err != nil {
			b.closeStore()
			return nil, fmt.Errorf("broker listen on %q: %w", cfg.TCPAddr, err)
		}
		b.ln = ln
	}
	return b, nil
}

// addHooks registers Herald's hooks on the mochi server in the order they
// must run, and opens the storage hook. On error nothing is left open.
func (b *Broker) addHooks() error {
	if err := b.srv.AddHook(&authHook{b: b}, nil); err != nil {
		return fmt.Errorf("broker auth hook: %w", err)
	}
	if err := b.srv.AddHook(&protocolHook{srv: b.srv}, nil); err != nil {
		return fmt.Errorf("broker protocol hook: %w", err)
	}
	b.direct = newDirectHook(b)
	if err := b.srv.AddHook(b.direct, nil); err != nil {
		return fmt.Errorf("broker direct hook: %w", err)
	}
	var err error
	st := newMemoryStore(b.log, b.metrics)
	if b.cfg.DataDir != "" {
		if st, err = openStore(filepath.Join(b.cfg.DataDir, "broker.db"), b.log, b.metrics,
			compaction{minFree: b.cfg.CompactMinFree, every: b.cfg.CompactInterval}); err != nil {
			return err
		}
	}
	st.srv, st.maxSessionExpiry = b.srv, b.cfg.SessionExpiry
	if err := b.srv.AddHook(st, nil); err != nil {
		_ = st.Stop()
		return fmt.Errorf("broker storage hook: %w", err)
	}
	b.store = st
	durable := &durableHook{b: b}
	b.quota = newQuotaHook(b, durable.refuse)
	if err := b.srv.AddHook(b.quota, nil); err != nil {
		_ = st.Stop()
		return fmt.Errorf("broker quota hook: %w", err)
	}
	if err := b.srv.AddHook(durable, nil); err != nil {
		_ = st.Stop()
		return fmt.Errorf("broker durable hook: %w", err)
	}
	return nil
}

func (b *Broker) closeStore() { _ = b.store.Stop() }

// TCPAddr returns the bound address of the plain MQTT listener, or nil.
func (b *Broker) TCPAddr() net.Addr {
	if b.ln == nil {
		return nil
	}
	return b.ln.Addr()
}

// Ready reports whether the broker is serving (stored sessions loaded,
// connections accepted).
func (b *Broker) Ready() bool { return b.ready.Load() }

// Health returns nil while the broker serves and its storage writes, and
// otherwise why not (for /readyz).
func (b *Broker) Health() error {
	if !b.ready.Load() {
		return ErrNotRunning
	}
	return b.store.health()
}

// Clients returns the number of connected MQTT clients.
func (b *Broker) Clients() int {
	return int(atomic.LoadInt64(&b.srv.Info.ClientsConnected))
}

// Run serves until ctx ends, then shuts down gracefully: it stops
// accepting, sends MQTT 5 clients DISCONNECT 0x8B (server shutting down),
// closes every connection and flushes and closes storage, all within 10 s.
// Run may be called once.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.once.Start("broker"); err != nil {
		return err
	}

	if err := b.startPollers(); err != nil {
		b.abort()
		return err
	}
	if err := b.srv.Serve(); err != nil {
		b.abort()
		return fmt.Errorf("broker serve: %w", err)
	}
	if err := b.store.restore(b.srv); err != nil {
		b.abort()
		return err
	}
	b.quota.load(b.srv)
	b.store.started.Store(true)
	b.direct.afterRestore()
	b.ready.Store(true)
	b.log.Info("broker ready", "tcp", b.TCPAddr(), "max_connections", b.cfg.MaxConnections)

	if b.ln != nil {
		b.bg.Add(1)
		go func() {
			defer b.bg.Done()
			b.acceptLoop()
		}()
	}

	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	expire := time.NewTimer(b.expiries.next(time.Now()))
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			b.shutdown()
			return nil
		case now := <-sweep.C:
			b.limiter.sweep(now)
		case now := <-expire.C:
			b.expireDue(now)
		case <-b.expiries.wake:
		}
		expire.Reset(b.expiries.next(time.Now()))
	}
}

// abort releases what New acquired when Run cannot start.
func (b *Broker) abort() {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	if b.ln != nil {
		_ = b.ln.Close()
	}
	_ = b.srv.Close()
	b.stopPollers()
	b.cancel()
}

// startPollers starts one poller per CPU for WebSocketEpoll.
func (b *Broker) startPollers() error {
	if b.cfg.WebSocketIO != WebSocketEpoll {
		return nil
	}
	for range max(1, runtime.GOMAXPROCS(0)) {
		p, err := newPoller(b.log)
		if err != nil {
			return fmt.Errorf("broker websocket poller: %w", err)
		}
		b.pollers = append(b.pollers, p)
		b.pollWG.Add(1)
		go func() {
			defer b.pollWG.Done()
			p.run()
		}()
	}
	return nil
}

// stopPollers ends the pollers once no connection needs them.
func (b *Broker) stopPollers() {
	for _, p := range b.pollers {
		p.stop()
	}
	b.pollWG.Wait()
}

// goBackground runs f on a goroutine that shutdown waits for: work a
// connection hands off so that the goroutine noticing it never blocks on
// a peer (close handshakes, pong replies).
func (b *Broker) goBackground(f func()) {
	b.mu.Lock()
	b.bg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.bg.Done()
		f()
	}()
}

// shutdown implements the end of Run.
func (b *Broker) shutdown() {
	deadline := time.Now().Add(shutdownBudget)
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.ready.Store(false)
	if b.ln != nil {
		_ = b.ln.Close()
	}

	b.closeLive(false) // not connected yet: nothing to say to them
	b.disconnectAll(deadline)

	done := make(chan struct{})
	go func() { b.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(deadline) - time.Second):
		b.log.Warn("broker shutdown: connections still open, cutting them")
		b.cancel()
		b.closeLive(true)
		<-done
	}
	b.bg.Wait()
	b.stopPollers()
	// Stops mochi's loops and the hooks; the store flushes and closes.
	_ = b.srv.Close()
	b.cancel()
	b.log.Info("broker stopped")
}

// disconnectAll tells every connected client the server is going away, in
// parallel so one slow peer cannot hold up the rest.
func (b *Broker) disconnectAll(deadline time.Time) {
	work := make(chan *mqtt.Client)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cl := range work {
				writeBy := time.Now().Add(2 * time.Second)
				if writeBy.After(deadline) {
					writeBy = deadline
				}
				_ = cl.Net.Conn.SetWriteDeadline(writeBy)
				if cl.Properties.ProtocolVersion == 5 {
					_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
				} else {
					// 3.1.1 has no server DISCONNECT; just close.
					cl.Stop(packets.ErrServerShuttingDown)
				}
			}
		}()
	}
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Inline || cl.Net.Conn == nil || cl.Closed() {
			continue
		}
		work <- cl
	}
	close(work)
	wg.Wait()
}

// kick disconnects cl without blocking the caller (a publisher that found
// cl's queue full must not wait for cl's socket).
func (b *Broker) kick(cl *mqtt.Client, code packets.Code) {
	b.background(func() { cl.Stop(code) })
}

// background runs f on a goroutine that shutdown waits for; once the
// broker is closing, f does not run (shutdown disconnects everyone).
func (b *Broker) background(f func()) {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return
	}
	b.bg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.bg.Done()
		f()
	}()
}

func errString(err error) string {
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, io.EOF):
		return "connection closed"
	}
	return err.Error()
}

// levelHandler drops records below min; mochi's logger is too chatty for a
// gateway holding 100k connections.
type levelHandler struct {
	min slog.Level
	h   slog.Handler
}

func (l levelHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.h.Enabled(ctx, lv)
}
func (l levelHandler) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return levelHandler{min: l.min, h: l.h.WithAttrs(a)}
}
func (l levelHandler) WithGroup(n string) slog.Handler {
	return levelHandler{min: l.min, h: l.h.WithGroup(n)}
}
