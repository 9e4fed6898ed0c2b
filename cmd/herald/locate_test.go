package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// `herald publish` beside a gateway finds it from the same settings serve
// used (address, data directory with the demo key): no --url, no --api-key.
func TestPublishFindsTheGatewayFromItsSettings(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir)
	s := g.newSession(t)
	mc := subscribedBrowser(t, s)
	port := g.base[strings.LastIndex(g.base, ":")+1:]
	// The key is where the gateway wrote it.
	if b, err := os.ReadFile(filepath.Join(dir, "demo-api-key")); err != nil || strings.TrimSpace(string(b)) != testAPIKey {
		t.Fatalf("demo-api-key: %q, %v", b, err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"env addr and data dir", nil, map[string]string{"HERALD_HTTP_ADDR": ":" + port, "HERALD_DATA_DIR": dir}},
		{"flags", []string{"--http-addr", "0.0.0.0:" + port, "--data-dir", dir}, nil},
		{"config file", []string{"--config", writeConfig(t, "httpAddr: '127.0.0.1:"+port+"'\ndataDir: "+dir+"\n")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			args := append([]string{"publish", "--channel", s.Channel, "--type", "x.found", "--id", "evt_" + strings.ReplaceAll(tc.name, " ", "_")}, tc.args...)
			if err := run(context.Background(), args, &out, func(k string) string { return tc.env[k] }); err != nil {
				t.Fatalf("herald publish: %v (%s)", err, out.String())
			}
			if p := mc.next(t, 5*time.Second); p.Topic != "apps/demo/channels/"+s.Channel+"/events" {
				t.Fatalf("got topic %q", p.Topic)
			}
		})
	}
	t.Run("no key anywhere", func(t *testing.T) {
		err := run(context.Background(), []string{"publish", "--channel", s.Channel, "--url", g.base, "--data-dir", t.TempDir()}, io.Discard, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), "--api-key") || !strings.Contains(err.Error(), "demo-api-key") {
			t.Fatalf("got %v, want an error naming --api-key and the key file", err)
		}
	})
	t.Run("healthcheck", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"healthcheck", "--url", g.base}, &out, func(string) string { return "" }); err != nil {
			t.Fatalf("healthcheck: %v", err)
		}
		err := run(context.Background(), []string{"healthcheck", "--http-addr", testkit.FreeAddr(t)}, io.Discard, func(string) string { return "" })
		if !errors.Is(err, errNotReady) {
			t.Fatalf("healthcheck of nothing: %v, want errNotReady", err)
		}
	})
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// The demo app: its key is kept in the data dir (HERALD_DEMO_API_KEY wins
// and is written there); it runs beside configured apps unless demo: false.
func TestDemoAppAndKeyFile(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	shop := "apps:\n  - {id: shop, apiKey: shop-key-0123456789, secret: shop-secret-0123456789-0123456789}\n"
	ids := func(t *testing.T, yaml string, env map[string]string) ([]string, error) {
		t.Helper()
		args := []string{"--data-dir", t.TempDir()}
		if yaml != "" {
			args = append(args, "--config", writeConfig(t, yaml))
		}
		c, err := loadTest(t, args, env)
		if err != nil {
			return nil, err
		}
		apps, err := c.apps(func(k string) string { return env[k] }, nil, log)
		var out []string
		for _, a := range apps {
			out = append(out, a.ID)
		}
		return out, err
	}
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       string // app ids, or "error"
	}{
		{"nothing configured", "", nil, "demo"},
		{"apps keep the demo app", shop, nil, "shop,demo"},
		{"demo false", shop + "demo: false\n", nil, "shop"},
		{"HERALD_DEMO=false", shop, map[string]string{"HERALD_DEMO": "false"}, "shop"},
		{"a configured demo app replaces it", "apps:\n  - {id: demo, apiKey: my-demo-key-0123456789, secret: my-demo-secret-0123456789-0123456789}\n", nil, "demo"},
		{"no apps at all", "demo: false\n", nil, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ids(t, tc.yaml, tc.env)
			if tc.want == "error" {
				if err == nil || !strings.Contains(err.Error(), "demo") {
					t.Fatalf("got %v, %v; want an error naming demo", got, err)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != tc.want {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}

	dir := t.TempDir()
	key := func(env map[string]string) string {
		t.Helper()
		c, err := loadTest(t, []string{"--data-dir", dir}, env)
		if err != nil {
			t.Fatal(err)
		}
		app, err := c.demoApp(func(k string) string { return env[k] }, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "demo-api-key"))
		if strings.TrimSpace(string(b)) != app.APIKey {
			t.Fatalf("file holds %q, app key %q", b, app.APIKey)
		}
		return app.APIKey
	}
	generated := key(nil)
	if again := key(nil); again != generated {
		t.Fatalf("a restart changed the generated key: %q then %q", generated, again)
	}
	if got := key(map[string]string{"HERALD_DEMO_API_KEY": "fixed-demo-key-0123456789"}); got != "fixed-demo-key-0123456789" {
		t.Fatalf("HERALD_DEMO_API_KEY ignored: %q", got)
	}
	if info, err := os.Stat(filepath.Join(dir, "demo-api-key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v, %v", info.Mode(), err)
	}
}
