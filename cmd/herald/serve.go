package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/broker"
	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/web"
)

func runServe(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("herald serve", flag.ContinueOnError)
	fs.SetOutput(stdout)
	cfg, err := loadConfig(fs, args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := cfg.logger(stdout)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, log, getenv)
}

// parts collects the long-lived parts of a process: each runs until ctx ends
// and the first failure stops the rest.
type parts struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
	stop context.CancelFunc
}

func (p *parts) run(ctx context.Context, name string, log *slog.Logger, f func(context.Context) error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("part failed", "part", name, "err", err)
			p.mu.Lock()
			p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
			p.mu.Unlock()
			p.stop()
		}
	}()
}

func (p *parts) wait() error {
	p.wg.Wait()
	return errors.Join(p.errs...)
}

func serve(parent context.Context, cfg *Config, log *slog.Logger, getenv func(string) string) error {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	p := &parts{stop: cancel}

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var ln net.Listener
	var origins []string
	if cfg.has("web") {
		var err error
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen http %s: %w", cfg.HTTPAddr, err)
		}
		defer ln.Close()
		origins = localOrigins(ln.Addr(), cfg.PublicURL)
	}
	apps, err := cfg.apps(getenv, origins, log)
	if err != nil {
		return err
	}
	reg, err := tenant.NewRegistry(apps)
	if err != nil {
		return err
	}

	ready := map[string]func() bool{}
	var pub bridge.Publisher
	var mqttHandler http.Handler
	var embedded *broker.Broker
	if cfg.has("broker") && cfg.Broker.Mode == "embedded" {
		b, err := broker.New(broker.Config{
			Registry: reg, DataDir: cfg.DataDir, TCPAddr: cfg.MQTTAddr,
			MaxConnections: cfg.Broker.MaxConnections, MaxPacketSize: cfg.Broker.MaxPacketSize,
			MaxQueued: cfg.Broker.MaxQueued, MaxInflight: cfg.Broker.MaxInflight,
			KeepAliveMax: cfg.Broker.KeepAliveMax, SessionExpiry: cfg.Broker.SessionExpiry,
			ConnectRatePerIP: cfg.Broker.ConnectRate, WebSocketIO: cfg.Broker.WebSocketIO,
			Logger: log.With("part", "broker"), Metrics: metrics,
		})
		if err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		p.run(ctx, "broker", log, b.Run)
		ready["broker"] = b.Ready
		pub = bridge.NewEmbedded(b)
		mqttHandler = b.WebSocketHandler()
		embedded = b
	}
	ext, err := startExternal(ctx, cfg, p, embedded, reg, ready, metrics, log)
	if err != nil {
		cancel()
		return errors.Join(err, p.wait())
	}
	if ext.Publisher != nil {
		pub = ext.Publisher
	}

	urls := []any{"roles", cfg.Roles}
	var uploads web.Uploader
	var jobs web.JobSubmitter
	if cfg.has("web") || cfg.has("processor") {
		clients, err := startAWS(ctx, cfg, p, origins, log)
		if err != nil {
			cancel()
			return errors.Join(err, p.wait())
		}
		urls = append(urls, "s3", first(clients.Endpoint, "aws"), "queue", clients.QueueURL)
		if uploads, jobs, err = startProcessor(ctx, cfg, p, clients, pub, log); err != nil {
			cancel()
			return errors.Join(err, p.wait())
		}
	}
	if cfg.has("web") {
		srv, err := web.New(web.Config{
			Registry: reg, Publisher: pub, MQTT: mqttHandler, Uploads: uploads, Jobs: jobs,
			MQTTURL: ext.MQTTURL, Sessions: ext.Sessions,
			Ready:    readiness(ready),
			Gatherer: metrics, Metrics: metrics,
			Logger: log.With("part", "web"),
		})
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
		p.run(ctx, "http", log, func(ctx context.Context) error { return serveHTTP(ctx, hs, ln, cfg.ShutdownTimeout) })
		base := "http://" + displayAddr(ln.Addr())
		urls = append(urls, "demo", base+"/", "api", base+"/v1/", "mqtt_ws", "ws://"+displayAddr(ln.Addr())+"/mqtt")
	}
	if cfg.MQTTAddr != "" && cfg.has("broker") {
		urls = append(urls, "mqtt_tcp", "mqtt://"+cfg.MQTTAddr)
	}
	if err := waitReady(ctx, ready); err != nil {
		cancel()
		return errors.Join(err, p.wait())
	}
	log.Info("herald ready", urls...)

	<-ctx.Done()
	log.Info("herald shutting down")
	return p.wait()
}

// serveHTTP serves until ctx ends, then stops accepting and waits for
// in-flight requests up to timeout. Hijacked /mqtt sockets belong to the
// broker, which disconnects them itself.
func serveHTTP(ctx context.Context, hs *http.Server, ln net.Listener, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		// Requests still running at the deadline are cut so the process
		// exits on time.
		_ = hs.Close()
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// waitReady holds the "ready" log line until every part reports ready, so
// anything that waits for that line (operators, tests) can use the gateway.
func waitReady(ctx context.Context, checks map[string]func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	limit := time.After(30 * time.Second)
	for readiness(checks)(ctx) != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-limit:
			return fmt.Errorf("not ready after 30s: %w", readiness(checks)(ctx))
		case <-t.C:
		}
	}
	return nil
}

func readiness(checks map[string]func() bool) func(context.Context) error {
	return func(context.Context) error {
		for name, ok := range checks {
			if !ok() {
				return fmt.Errorf("%s not ready", name)
			}
		}
		return nil
	}
}

// localOrigins lists the origins the local demo page is served from, which
// the demo app allows.
func localOrigins(addr net.Addr, publicURL string) []string {
	port := strconv.Itoa(addr.(*net.TCPAddr).Port)
	out := []string{"http://localhost:" + port, "http://127.0.0.1:" + port, "http://[::1]:" + port}
	if publicURL != "" {
		out = append(out, publicURL)
	}
	return out
}

// displayAddr renders a listener address that a browser on this machine can
// open (":8080" becomes "localhost:8080").
func displayAddr(a net.Addr) string {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if t.IP == nil || t.IP.IsUnspecified() {
		return net.JoinHostPort("localhost", strconv.Itoa(t.Port))
	}
	return t.String()
}
