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
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

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

// serve runs the gateway until ctx ends, then drains every part.
func serve(parent context.Context, cfg *Config, log *slog.Logger, getenv func(string) string) error {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	g := newGateway(cfg, log, getenv, cancel)
	defer g.closeListener()
	steps := []func(context.Context) error{
		g.startRuntime, g.listen, g.startRevocations, g.startTenants, g.startBroker, g.startExternal,
		g.startJobs, g.startWeb, g.startMetrics, g.waitReady,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			cancel()
			return errors.Join(err, g.wait())
		}
	}
	log.Info("herald ready", g.urls...)
	<-ctx.Done()
	log.Info("herald shutting down")
	return g.wait()
}

// startRuntime applies the Go runtime defaults (runtime.go) and starts the
// collector that returns memory while the gateway is idle.
func (g *gateway) startRuntime(ctx context.Context) error {
	rs := applyRuntimeDefaults(g.getenv)
	g.log.Info("runtime settings", "gogc", rs.GOGC, "memory_limit", rs.MemoryLimit, "gomaxprocs", runtime.GOMAXPROCS(0))
	g.run(ctx, "memory", newIdleCollector(g.log, rs.GOGC).Run)
	return nil
}

// listen binds the metrics address (if set) and the HTTP address (web
// role) first, so the demo app's origins name the real port.
func (g *gateway) listen(context.Context) error {
	if g.cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", g.cfg.MetricsAddr)
		if err != nil {
			return listenError(err, g.cfg.MetricsAddr, settingMetricsAddr)
		}
		g.metln = ln
	}
	if !g.cfg.has(RoleWeb) {
		return nil
	}
	ln, err := net.Listen("tcp", g.cfg.HTTPAddr)
	if err != nil {
		return listenError(err, g.cfg.HTTPAddr, settingHTTPAddr)
	}
	g.ln = ln
	g.origins = localOrigins(ln.Addr(), g.cfg.PublicURL)
	return nil
}

func (g *gateway) closeListener() {
	if g.ln != nil {
		_ = g.ln.Close()
	}
	if g.metln != nil {
		_ = g.metln.Close()
	}
}

// startMetrics serves /metrics on its own listener, when MetricsAddr is
// set; any role may have one.
func (g *gateway) startMetrics(ctx context.Context) error {
	if g.metln == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	ln, timeout := g.metln, g.cfg.ShutdownTimeout
	g.run(ctx, "metrics", func(ctx context.Context) error { return serveHTTP(ctx, hs, ln, timeout) })
	g.urls = append(g.urls, "metrics", "http://"+displayAddr(ln.Addr())+"/metrics")
	return nil
}

// startTenants builds the app registry from the configuration.
func (g *gateway) startTenants(context.Context) error {
	apps, err := g.cfg.apps(g.getenv, g.origins, g.log)
	if err != nil {
		return err
	}
	var opts []tenant.Option
	if g.revocations != nil {
		opts = append(opts, tenant.WithRevocations(g.revocations))
	}
	g.reg, err = tenant.NewRegistry(apps, opts...)
	return err
}

// startBroker runs the embedded broker (broker role, mode embedded); it is
// then where events go and what /mqtt serves.
func (g *gateway) startBroker(ctx context.Context) error {
	if !g.cfg.has(RoleBroker) || g.cfg.Broker.Mode != BrokerEmbedded {
		return nil
	}
	c := g.cfg.Broker
	b, err := broker.New(broker.Config{
		Registry: g.reg, DataDir: g.cfg.DataDir, TCPAddr: g.cfg.MQTTAddr,
		MaxConnections: c.MaxConnections, MaxPacketSize: c.MaxPacketSize,
		MaxQueued: c.MaxQueued, MaxInflight: c.MaxInflight,
		KeepAliveMax: c.KeepAliveMax, SessionExpiry: c.SessionExpiry,
		ConnectRatePerIP: c.ConnectRatePerIP, WebSocketIO: c.WebSocketIO,
		CompactMinFree: c.CompactMinFree, CompactInterval: c.CompactInterval,
		Logger: g.log.With("part", "broker"), Metrics: g.metrics,
	})
	if err != nil {
		return fmt.Errorf("broker: %w", listenError(err, g.cfg.MQTTAddr, settingMQTTAddr))
	}
	g.run(ctx, "broker", b.Run)
	g.ready["broker"] = b.Health
	g.embedded, g.pub, g.mqtt = b, bridge.NewEmbedded(b), b.WebSocketHandler()
	if g.cfg.MQTTAddr != "" {
		g.urls = append(g.urls, "mqtt_tcp", "mqtt://"+g.cfg.MQTTAddr)
	}
	return nil
}

// startWeb serves the HTTP API, the demo page and /mqtt (web role).
func (g *gateway) startWeb(ctx context.Context) error {
	if !g.cfg.has(RoleWeb) {
		return nil
	}
	srv, err := web.New(web.Config{
		Registry: g.reg, Publisher: g.pub, MQTT: g.mqtt, Uploads: g.uploads, Multipart: g.multipart, Jobs: g.jobs, JobStatus: g.jobStatus,
		MQTTURL: g.mqttURL, Sessions: g.sessions,
		Ready:    g.readiness,
		Gatherer: g.metrics, Metrics: g.metrics, NoMetricsRoute: g.metln != nil,
		Revoker: &revoker{store: g.revocations, broker: g.embedded, fed: g.fed},
		Logger:  g.log.With("part", "web"),
	})
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	ln, timeout := g.ln, g.cfg.ShutdownTimeout
	g.run(ctx, "http", func(ctx context.Context) error { return serveHTTP(ctx, hs, ln, timeout) })
	addr := displayAddr(ln.Addr())
	// The demo page needs the demo app; without it the page is not offered.
	if _, err := g.reg.App(demoApp); err == nil {
		g.urls = append(g.urls, "demo", "http://"+addr+"/")
	}
	g.urls = append(g.urls, "api", "http://"+addr+"/v1/", "mqtt_ws", "ws://"+addr+"/mqtt")
	return nil
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
