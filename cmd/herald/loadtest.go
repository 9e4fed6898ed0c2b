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
		// HERALD_LOADTEST_WORKER_CPUPROFILE=prefix profiles each worker
		// (prefix.<pid>), to see what the load generator itself costs.
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
	if len(args) > 0 && args[0] == "--gateway" {
		return runProfiledGateway(ctx, args[1:], stdout, getenv)
	}
	fs := flag.NewFlagSet("herald loadtest", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { fmt.Fprint(stdout, loadtestUsage); fs.PrintDefaults() }
	var (
		heraldURLs  = fs.String("herald", "", "comma-separated gateway base URLs (replicas), e.g. http://127.0.0.1:8080")
		heraldPIDs  = fs.String("herald-pids", "", "comma-separated gateway pids to sample RSS/CPU from /proc")
		heraldPProf = fs.String("herald-pprof", "", "comma-separated pprof base URLs of the gateways (see --gateway); profiles go to --out")
		app         = fs.String("app", "demo", "Herald app id")
		apiKey      = fs.String("api-key", "", "app API key (env HERALD_DEMO_API_KEY)")
		secret      = fs.String("secret", "", "app signing secret for --mint offline (env HERALD_LOADTEST_SECRET)")
		mint        = fs.String("mint", loadtest.MintHTTP, "how Herald sessions are minted: http (POST /v1/sessions) or offline (app secret)")
		publish     = fs.String("publish", loadtest.PublishMQTT, "how events reach Herald: mqtt (service connection per replica) or http (POST /v1/events)")
		mosq        = fs.String("mosquitto", "", "also run against a plain MQTT broker's WebSocket URL, e.g. ws://127.0.0.1:9001")
		mosqPID     = fs.Int("mosquitto-pid", 0, "that broker's pid")
		sessions    = fs.Int("sessions", loadtest.DefaultSessions, "browser sessions to open per target")
		workers     = fs.Int("workers", 0, "worker processes (default: one per 15,000 sessions)")
		inProcess   = fs.Bool("in-process", false, "run workers as goroutines instead of child processes")
		ramp        = fs.Float64("ramp", loadtest.DefaultRamp, "connects per second over all workers")
		rates       = fs.String("rates", "1000", "comma-separated publish rates (events/s), each held for --duration")
		duration    = fs.Duration("duration", loadtest.DefaultDuration, "how long each rate is held")
		drain       = fs.Duration("drain", loadtest.DefaultDrain, "longest wait for late events after each rate")
		settle      = fs.Duration("settle", loadtest.DefaultSettle, "wait after the ramp before the idle memory reading")
		qos         = fs.Int("qos", 0, "subscription and publish QoS (0 or 1)")
		payload     = fs.Int("payload", loadtest.DefaultPayloadBytes, "payload bytes (≤ 100)")
		keepAlive   = fs.Duration("keepalive", 0, "MQTT keep-alive; sessions ping at 3/4 of it (0: no pings)")
		publishers  = fs.Int("publishers", loadtest.DefaultPublishers, "service connections per worker per replica")
		sourceIPs   = fs.Int("source-ips", 0, "loopback source addresses per worker (default: one per 10,000 sessions)")
		origin      = fs.String("origin", "", "Origin header sent by sessions (a browser always sends one)")
		timeout     = fs.Duration("timeout", loadtest.DefaultTimeout, "bound on one session's connect")
		hardCap     = fs.Duration("hard-cap", loadtest.DefaultHardCap, "the whole run stops after this")
		out         = fs.String("out", "", "directory for results.json, report.md and plots (default: summary only)")
		title       = fs.String("title", "Herald load test", "report title")
		quiet       = fs.Bool("quiet", false, "no progress bar on stderr")
		commandLine = fs.String("command", "", "command line to record in the report")
		commit      = fs.String("commit", "", "commit to record in the report")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	cfg := loadtest.Config{
		Sessions: *sessions, Workers: *workers, Ramp: *ramp, Duration: *duration, Drain: *drain, Settle: *settle,
		QoS: byte(*qos), Payload: *payload, KeepAlive: *keepAlive, Publishers: *publishers,
		SourceIPs: *sourceIPs, Origin: *origin, Timeout: *timeout, HardCap: *hardCap,
	}
	var err error
	if cfg.Rates, err = parseFloats(*rates); err != nil {
		return fmt.Errorf("--rates: %w", err)
	}
	if *heraldURLs != "" {
		t := loadtest.Target{Name: "herald", Kind: loadtest.KindHerald, App: *app,
			APIKey: first(*apiKey, getenv("HERALD_DEMO_API_KEY")), Secret: first(*secret, getenv("HERALD_LOADTEST_SECRET")),
			Mint: *mint, Publish: *publish}
		for _, u := range splitList(*heraldURLs) {
			u = strings.TrimSuffix(u, "/")
			t.Replicas = append(t.Replicas, loadtest.Replica{Base: u, WS: wsURL(u)})
		}
		t.PProf = splitList(*heraldPProf)
		if t.PIDs, err = parseInts(*heraldPIDs); err != nil {
			return fmt.Errorf("--herald-pids: %w", err)
		}
		if t.APIKey == "" && (t.Publish == loadtest.PublishHTTP || t.Publish == loadtest.PublishMQTT) {
			return errors.New("herald loadtest: --api-key (or HERALD_DEMO_API_KEY) is needed to publish")
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	if *mosq != "" {
		t := loadtest.Target{Name: "mosquitto", Kind: loadtest.KindMQTT, Replicas: []loadtest.Replica{{WS: *mosq}}}
		if *mosqPID > 0 {
			t.PIDs = []int{*mosqPID}
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	if len(cfg.Targets) == 0 {
		fmt.Fprintln(stdout, "herald loadtest: give --herald and/or --mosquitto")
		return errUsage
	}
	cfg.ProfileDir = *out
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	if !*inProcess {
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
	res.Command, res.Commit = *commandLine, *commit
	if *out != "" {
		if werr := loadtest.WriteReport(*out, *title, res); werr != nil {
			return errors.Join(err, werr)
		}
		fmt.Fprintf(stdout, "report: %s/report.md\n", strings.TrimSuffix(*out, "/"))
	}
	loadtest.WriteSummary(stdout, res)
	return err
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
			return nil, fmt.Errorf("%q is not a pid", p)
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
