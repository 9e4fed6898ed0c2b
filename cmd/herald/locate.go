package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// located is a running gateway as a client command finds it: the way
// `herald serve` was configured, so a command run beside it needs no flags.
type located struct {
	url    string
	cfg    *Config
	getenv func(string) string
}

// locateGateway parses a client command's flags (its own, which must
// include --url, plus --config, --http-addr and --data-dir) and finds the
// gateway: --url, else HERALD_URL, else the configuration's httpAddr on
// this machine.
func locateGateway(fs *flag.FlagSet, args []string, getenv func(string) string) (*located, error) {
	cfg, err := loadConfigWith(fs, args, getenv, flagHTTPAddr|flagDataDir)
	if err != nil {
		return nil, err
	}
	base := first(fs.Lookup("url").Value.String(), getenv("HERALD_URL"))
	if base == "" {
		if base, err = dialURL(cfg.HTTPAddr); err != nil {
			return nil, err
		}
	}
	return &located{url: strings.TrimSuffix(base, "/"), cfg: cfg, getenv: getenv}, nil
}

// dialURL turns a listen address into the URL a client on this machine
// dials: ":8080" and "0.0.0.0:8080" become http://127.0.0.1:8080.
func dialURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("httpAddr %q (HERALD_HTTP_ADDR, --http-addr): %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// apiKey is flagKey, else HERALD_API_KEY, else HERALD_DEMO_API_KEY, else
// the demo app's key the gateway wrote to its data directory.
func (l *located) apiKey(flagKey string) (string, error) {
	if k := first(flagKey, l.getenv("HERALD_API_KEY"), l.getenv("HERALD_DEMO_API_KEY")); k != "" {
		return k, nil
	}
	path := filepath.Join(l.cfg.DataDir, demoKeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no API key: pass --api-key or set HERALD_API_KEY (the demo app's key is read from %s, which a gateway with that data directory writes: %w)", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// errNotReady is a gateway that answered /readyz with anything but 200.
var errNotReady = errors.New("not ready")

// runHealthcheck asks the gateway's /readyz, for container health checks:
// it succeeds (exit 0) only when every part is ready.
func runHealthcheck(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("herald healthcheck", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.String("url", "", "gateway base URL (env HERALD_URL; default: the serve configuration's httpAddr, http://127.0.0.1:8080)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	gw, err := locateGateway(fs, args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gw.url+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s/readyz: %w: %w", gw.url, errNotReady, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/readyz: %w: %s %s", gw.url, errNotReady, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(string(body)))
	return nil
}
