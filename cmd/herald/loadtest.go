package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	rtpprof "runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/heraldgw/herald/loadtest"
)

const loadtestUsage = `herald loadtest — open many browser sessions and measure delivery

  herald loadtest --herald http://127.0.0.1:8080 --api-key KEY --sessions 10000 \
      --rates 20000,40000,60000 --duration 15s --out docs/bench/run
  herald loadtest ... --mosquitto ws://127.0.0.1:9001 --mosquitto-pid PID
  herald loadtest --gateway --pprof-addr 127.0.0.1:6060 -- serve [serve flags]

Sessions are spread round robin over the --herald replicas; events for a
session are published through its own replica. Only loopback targets.
`

func runLoadtest(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "--worker" {
		return runLoadtestWorker(ctx, stdout, getenv)
	}
	if len(args) > 0 && args[0] == "--gateway" {
		return runProfiledGateway(ctx, args[1:], stdout, getenv)
	}
	fs := flag.NewFlagSet("herald loadtest", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { fmt.Fprint(stdout, loadtestUsage); fs.PrintDefaults() }
	f := newLoadtestFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	cfg, err := f.config(getenv)
	if err != nil {
		return err
	}
	if len(cfg.Targets) == 0 {
		fmt.Fprintln(stdout, "herald loadtest: give --herald and/or --mosquitto")
		return errUsage
	}
	if !f.inProcess {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable for workers: %w", err)
		}
		cfg.Spawn = loadtest.Exec{Path: exe, Args: []string{"loadtest", "--worker"}, Stderr: os.Stderr}
	}
	res, err := loadtest.Run(ctx, cfg)
	if res == nil {
		return err
	}
	res.Command, res.Commit = f.commandLine, f.commit
	if f.out != "" {
		if werr := loadtest.WriteReport(f.out, f.title, res); werr != nil {
			return errors.Join(err, werr)
		}
		fmt.Fprintf(stdout, "report: %s/report.md\n", strings.TrimSuffix(f.out, "/"))
	}
	loadtest.WriteSummary(stdout, res)
	return err
}

// runLoadtestWorker is one worker process of a run. With
// HERALD_LOADTEST_WORKER_CPUPROFILE=prefix it profiles itself
// (prefix.<pid>), to see what the load generator costs.
func runLoadtestWorker(ctx context.Context, stdout io.Writer, getenv func(string) string) error {
	if prefix := getenv("HERALD_LOADTEST_WORKER_CPUPROFILE"); prefix != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", prefix, os.Getpid()))
		if err != nil {
			return fmt.Errorf("worker cpu profile: %w", err)
		}
		defer f.Close()
		if err := rtpprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("worker cpu profile: %w", err)
		}
		defer rtpprof.StopCPUProfile()
	}
	return loadtest.RunWorker(ctx, os.Stdin, stdout)
}

// loadtestFlags are the flags of `herald loadtest`.
type loadtestFlags struct {
	heraldURLs, heraldPIDs, heraldPProf string
	app, apiKey, secret, mint, publish  string
	mosq                                string
	mosqPID                             int
	rates                               string
	inProcess, quiet                    bool
	out, title, commandLine, commit     string
	cfg                                 loadtest.Config // the settings that map one to one
}

func newLoadtestFlags(fs *flag.FlagSet) *loadtestFlags {
	f := &loadtestFlags{}
	fs.StringVar(&f.heraldURLs, "herald", "", "comma-separated gateway base URLs (replicas), e.g. http://127.0.0.1:8080")
	fs.StringVar(&f.heraldPIDs, "herald-pids", "", "comma-separated gateway pids to sample RSS/CPU from /proc")
	fs.StringVar(&f.heraldPProf, "herald-pprof", "", "comma-separated pprof base URLs of the gateways (see --gateway); profiles go to --out")
	fs.StringVar(&f.app, "app", "demo", "Herald app id")
	fs.StringVar(&f.apiKey, "api-key", "", "app API key (env HERALD_DEMO_API_KEY)")
	fs.StringVar(&f.secret, "secret", "", "app signing secret for --mint offline (env HERALD_LOADTEST_SECRET)")
	fs.StringVar(&f.mint, "mint", string(loadtest.MintHTTP), "how Herald sessions are minted: http (POST /v1/sessions) or offline (app secret)")
	fs.StringVar(&f.publish, "publish", string(loadtest.PublishMQTT), "how events reach Herald: mqtt (service connection per replica) or http (POST /v1/events)")
	fs.StringVar(&f.mosq, "mosquitto", "", "also run against a plain MQTT broker's WebSocket URL, e.g. ws://127.0.0.1:9001")
	fs.IntVar(&f.mosqPID, "mosquitto-pid", 0, "that broker's pid")
	fs.StringVar(&f.rates, "rates", "1000", "comma-separated publish rates (events/s), each held for --duration")
	fs.BoolVar(&f.inProcess, "in-process", false, "run workers as goroutines instead of child processes")
	fs.StringVar(&f.out, "out", "", "directory for results.json, report.md and plots (default: summary only)")
	fs.StringVar(&f.title, "title", "Herald load test", "report title")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar on stderr")
	fs.StringVar(&f.commandLine, "command", "", "command line to record in the report")
	fs.StringVar(&f.commit, "commit", "", "commit to record in the report")
	c := &f.cfg
	fs.IntVar(&c.Sessions, "sessions", loadtest.DefaultSessions, "browser sessions to open per target")
	fs.IntVar(&c.Workers, "workers", 0, "worker processes (default: one per 15,000 sessions)")
	fs.Float64Var(&c.Ramp, "ramp", loadtest.DefaultRamp, "connects per second over all workers")
	fs.DurationVar(&c.Duration, "duration", loadtest.DefaultDuration, "how long each rate is held")
	fs.DurationVar(&c.Drain, "drain", loadtest.DefaultDrain, "longest wait for late events after each rate")
	fs.DurationVar(&c.Settle, "settle", loadtest.DefaultSettle, "wait after the ramp before the idle memory reading")
	fs.Func("qos", "subscription and publish QoS (0 or 1)", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 8)
		c.QoS = byte(n)
		return err
	})
	fs.IntVar(&c.Payload, "payload", loadtest.DefaultPayloadBytes, "payload bytes (≤ 100)")
	fs.DurationVar(&c.KeepAlive, "keepalive", 0, "MQTT keep-alive; sessions ping at 3/4 of it (0: no pings)")
	fs.Func("publishers", fmt.Sprintf("service connections per worker per replica; a list (2,8) runs every rate with each count (default %d)", loadtest.DefaultPublishers), func(v string) error {
		n, err := parseInts(v)
		if err == nil && len(n) == 0 {
			err = errors.New("no count")
		}
		c.PublisherCounts = n
		return err
	})
	fs.Func("pin", "where processes run: off (default), on (servers on --server-cpus, the load generator on --client-cpus, as taskset does) or both (every step unpinned, then pinned)", func(v string) error {
		switch v {
		case "off":
			c.Views = []loadtest.View{loadtest.ViewShared}
		case "on":
			c.Views = []loadtest.View{loadtest.ViewPinned}
		case "both":
			c.Views = []loadtest.View{loadtest.ViewShared, loadtest.ViewPinned}
		default:
			return fmt.Errorf("%q: want off, on or both", v)
		}
		return nil
	})
	fs.Func("server-cpus", "CPUs of the servers when pinned, e.g. 0 or 0,1 (default: the first CPU)", func(v string) (err error) {
		c.ServerCPUs, err = parseInts(v)
		return err
	})
	fs.Func("client-cpus", "CPUs of the load generator when pinned (default: the last CPU)", func(v string) (err error) {
		c.ClientCPUs, err = parseInts(v)
		return err
	})
	fs.IntVar(&c.SourceIPs, "source-ips", 0, "loopback source addresses per worker (default: one per 10,000 sessions)")
	fs.StringVar(&c.Origin, "origin", "", "Origin header sent by sessions (a browser always sends one)")
	fs.DurationVar(&c.Timeout, "timeout", loadtest.DefaultTimeout, "bound on one session's connect")
	fs.DurationVar(&c.HardCap, "hard-cap", loadtest.DefaultHardCap, "the whole run stops after this")
	return f
}

// config is the run the flags describe: a Herald target with --herald, a
// plain broker with --mosquitto.
func (f *loadtestFlags) config(getenv func(string) string) (loadtest.Config, error) {
	cfg := f.cfg
	var err error
	if cfg.Rates, err = parseFloats(f.rates); err != nil {
		return cfg, fmt.Errorf("--rates: %w", err)
	}
	if f.heraldURLs != "" {
		t := loadtest.Target{Name: "herald", Kind: loadtest.KindHerald, App: f.app,
			APIKey: first(f.apiKey, getenv("HERALD_DEMO_API_KEY")), Secret: first(f.secret, getenv("HERALD_LOADTEST_SECRET")),
			Mint: loadtest.MintMode(f.mint), Publish: loadtest.PublishMode(f.publish), PProf: splitList(f.heraldPProf)}
		for _, u := range splitList(f.heraldURLs) {
			u = strings.TrimSuffix(u, "/")
			t.Replicas = append(t.Replicas, loadtest.Replica{Base: u, WS: wsURL(u)})
		}
		if t.PIDs, err = parseInts(f.heraldPIDs); err != nil {
			return cfg, fmt.Errorf("--herald-pids: %w", err)
		}
		if t.APIKey == "" && (t.Publish == loadtest.PublishHTTP || t.Publish == loadtest.PublishMQTT) {
			return cfg, errors.New("herald loadtest: --api-key (or HERALD_DEMO_API_KEY) is needed to publish")
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	if f.mosq != "" {
		t := loadtest.Target{Name: "mosquitto", Kind: loadtest.KindMQTT, Replicas: []loadtest.Replica{{WS: f.mosq}}}
		if f.mosqPID > 0 {
			t.PIDs = []int{f.mosqPID}
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	cfg.ProfileDir = f.out
	if !f.quiet {
		cfg.Progress = os.Stderr
	}
	return cfg, nil
}

// wsURL is a gateway's MQTT-over-WebSocket URL.
func wsURL(base string) string {
	switch {
	case strings.HasPrefix(base, "https://"):
		return "wss://" + strings.TrimPrefix(base, "https://") + "/mqtt"
	case strings.HasPrefix(base, "http://"):
		return "ws://" + strings.TrimPrefix(base, "http://") + "/mqtt"
	}
	return base
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, p := range splitList(s) {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q is not a rate", p)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		v, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", p)
		}
		out = append(out, v)
	}
	return out, nil
}

// runProfiledGateway runs `herald serve` in this process with net/http/pprof
// on a separate loopback listener, for profiling the gateway under load
// (herald serve itself serves no pprof).
//
//	herald loadtest --gateway --pprof-addr 127.0.0.1:6060 -- serve [flags]
func runProfiledGateway(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("herald loadtest --gateway", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("pprof-addr", "127.0.0.1:6060", "pprof listener (loopback only)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] != "serve" {
		return fmt.Errorf("herald loadtest --gateway: want -- serve [flags]: %w", errUsage)
	}
	host, _, err := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--pprof-addr %q: %w", *addr, loadtest.ErrNotLoopback)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("pprof listen %s: %w", *addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	return runServe(ctx, rest[1:], stdout, getenv)
}
