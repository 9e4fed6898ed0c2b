package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/loadtest"
)

// ltGatewayConfig lets one address open many sessions quickly (the load
// generator's sessions share a few loopback source addresses) and lifts the
// events-per-second limit of the app.
const ltGatewayConfig = `apps:
  - id: demo
    apiKey: "` + testAPIKey + `"
    secret: "loadtest-secret-0123456789abcdef0123456789"
    origins: ["*"]
    eventsPerSecond: 100000
broker:
  connectRatePerIP: -1
`

// ltRun runs `herald loadtest` through run() and returns its results.
func ltRun(t *testing.T, args ...string) *loadtest.Results {
	t.Helper()
	out := t.TempDir()
	var stdout bytes.Buffer
	env := map[string]string{"HERALD_DEMO_API_KEY": testAPIKey}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	args = append([]string{"loadtest", "--in-process", "--quiet", "--out", out}, args...)
	if err := run(ctx, args, &stdout, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("herald %s: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
	t.Logf("%s", stdout.String())
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res loadtest.Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "report.md")); err != nil {
		t.Errorf("no report.md: %v", err)
	}
	return &res
}

// checkDelivered asserts correctness only: every session connected and
// every QoS 1 event delivered exactly once. No timing is asserted.
func checkDelivered(t *testing.T, tr loadtest.TargetResult, sessions int) {
	t.Helper()
	if tr.Error != "" {
		t.Errorf("%s: run error %s", tr.Name, tr.Error)
	}
	if got, want := tr.Connected, sessions; got != want {
		t.Errorf("%s: connected %d (failures %v), want %d", tr.Name, got, tr.Reasons, want)
	}
	if len(tr.Phases) == 0 {
		t.Fatalf("%s: no publish phase ran", tr.Name)
	}
	for _, p := range tr.Phases {
		if p.Sent == 0 {
			t.Errorf("%s: rate %.0f sent nothing", tr.Name, p.Rate)
		}
		if p.Lost != 0 || p.Received != p.Sent {
			t.Errorf("%s: rate %.0f: received %d of %d (lost %d), want all", tr.Name, p.Rate, p.Received, p.Sent, p.Lost)
		}
		if p.Dup != 0 || p.Bad != 0 || p.PubFail != 0 {
			t.Errorf("%s: rate %.0f: dup %d, bad payloads %d, refused publishes %d, want none", tr.Name, p.Rate, p.Dup, p.Bad, p.PubFail)
		}
	}
	if tr.SessionsDropped != 0 {
		t.Errorf("%s: %d sessions dropped while publishing", tr.Name, tr.SessionsDropped)
	}
}

// TestLoadtestSmoke is the short version of scripts/bench-loadtest.sh: 500
// browser sessions on Herald and on Mosquitto in one run, QoS 1 events
// through a service MQTT connection.
func TestLoadtestSmoke(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(conf, []byte(ltGatewayConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, t.TempDir(), "--config", conf, "--roles", "broker,web")
	m := testkit.StartMosquitto(t)
	mosq, mosqPID := "ws://"+m.WSAddr, m.PID()

	const sessions = 500
	res := ltRun(t, "--herald", g.base, "--mosquitto", mosq, "--mosquitto-pid", fmt.Sprint(mosqPID),
		"--sessions", fmt.Sprint(sessions), "--ramp", "2000", "--qos", "1",
		"--rates", "1000", "--duration", "3s", "--drain", "10s", "--settle", "200ms")
	if got, want := len(res.Targets), 2; got != want {
		t.Fatalf("targets %d, want %d", got, want)
	}
	for _, tr := range res.Targets {
		checkDelivered(t, tr, sessions)
	}
	if mq := res.Targets[1]; mq.IdleRSS == 0 {
		t.Errorf("mosquitto: no server memory reading for pid %d", mosqPID)
	}
}

// TestLoadtestHTTPPublishAndOfflineMint drives events through POST
// /v1/events to sessions whose tokens were signed with the app secret.
func TestLoadtestHTTPPublishAndOfflineMint(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(conf, []byte(ltGatewayConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, t.TempDir(), "--config", conf, "--roles", "broker,web")
	const sessions = 100
	res := ltRun(t, "--herald", g.base, "--mint", "offline", "--secret", "loadtest-secret-0123456789abcdef0123456789",
		"--publish", "http", "--sessions", fmt.Sprint(sessions), "--qos", "1",
		"--rates", "200", "--duration", "2s", "--drain", "10s", "--settle", "100ms")
	checkDelivered(t, res.Targets[0], sessions)
}

func TestLoadtestRefusesNonLoopback(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"herald", []string{"--herald", "http://192.0.2.1:8080"}},
		{"mosquitto", []string{"--mosquitto", "ws://example.com:9001"}},
		{"second replica", []string{"--herald", "http://127.0.0.1:1,http://10.0.0.1:1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout bytes.Buffer
			env := map[string]string{"HERALD_DEMO_API_KEY": testAPIKey}
			err := run(context.Background(), append([]string{"loadtest", "--in-process", "--quiet"}, tc.args...), &stdout,
				func(k string) string { return env[k] })
			if got, want := err, loadtest.ErrNotLoopback; !errors.Is(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}
