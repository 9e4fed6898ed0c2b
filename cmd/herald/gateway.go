package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/broker"
	"github.com/heraldgw/herald/federation"
	"github.com/heraldgw/herald/revocation"
	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/web"
)

// gateway is one `herald serve` process: its configuration, the long-lived
// parts it runs, the readiness checks its "ready" line waits for, and its
// logger. Each start step adds what one role needs to the gateway, so steps
// take only a context; nothing here but wiring.
type gateway struct {
	cfg     *Config
	log     *slog.Logger
	getenv  func(string) string
	metrics *prometheus.Registry

	// Parts: each runs until the context ends; the first failure stops the
	// rest (stop cancels the gateway's context).
	stop  context.CancelFunc
	wg    sync.WaitGroup
	mu    sync.Mutex
	errs  []error
	ready map[string]func() error

	// What the steps build, in order.
	ln          net.Listener           // HTTP listener (web role)
	metln       net.Listener           // metrics listener (MetricsAddr set)
	revocations *revocation.Store      // revoked channels (web and broker roles)
	fed         *federation.Federation // replicas' upstream link, if any
	origins     []string               // the demo app's origins
	reg         *tenant.Registry
	embedded    *broker.Broker    // embedded broker (broker role, mode embedded)
	pub         bridge.Publisher  // where events go; nil if nowhere
	mqtt        http.Handler      // /mqtt of the embedded broker
	sessions    web.SessionMinter // external broker: completes POST /v1/sessions
	mqttURL     string            // external broker: what browsers connect to
	uploads     web.Uploader
	multipart   web.MultipartUploader
	jobs        web.JobSubmitter
	jobStatus   web.JobReader
	urls        []any // key-value pairs of the "ready" log line
}

func newGateway(cfg *Config, log *slog.Logger, getenv func(string) string, stop context.CancelFunc) *gateway {
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &gateway{
		cfg: cfg, log: log, getenv: getenv, metrics: metrics, stop: stop,
		ready: map[string]func() error{}, urls: []any{"roles", cfg.Roles},
	}
}

// run starts a long-lived part. A part that fails stops the gateway.
func (g *gateway) run(ctx context.Context, name string, f func(context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
			g.log.Error("part failed", "part", name, "err", err)
			g.mu.Lock()
			g.errs = append(g.errs, fmt.Errorf("%s: %w", name, err))
			g.mu.Unlock()
			g.stop()
		}
	}()
}

// wait returns once every part has returned, with their failures.
func (g *gateway) wait() error {
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

// readiness is /readyz: an error names the first part not ready.
func (g *gateway) readiness(context.Context) error {
	for name, check := range g.ready {
		if err := check(); err != nil {
			return fmt.Errorf("%s not ready: %w", name, err)
		}
	}
	return nil
}

// readyWhen adapts a part that only says whether it is ready.
func readyWhen(ok func() bool) func() error {
	return func() error {
		if !ok() {
			return errors.New("starting or stopped")
		}
		return nil
	}
}

// waitReady holds the "ready" log line until every part reports ready, so
// anything that waits for that line (operators, tests) can use the gateway.
func (g *gateway) waitReady(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	limit := time.After(30 * time.Second)
	for g.readiness(ctx) != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-limit:
			return fmt.Errorf("not ready after 30s: %w", g.readiness(ctx))
		case <-t.C:
		}
	}
	return nil
}
