package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// A port already taken is reported with the setting that chose it, so the
// operator knows what to change.
func TestBindFailureNamesTheSetting(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"http", []string{"serve", "--http-addr", busy}, nil, []string{"httpAddr", "HERALD_HTTP_ADDR", "--http-addr", busy, "another process"}},
		{"mqtt", []string{"serve", "--http-addr", "127.0.0.1:0", "--mqtt-addr", busy}, nil, []string{"mqttAddr", "HERALD_MQTT_ADDR", "--mqtt-addr"}},
		{"metrics", []string{"serve", "--http-addr", "127.0.0.1:0", "--metrics-addr", busy}, nil, []string{"metricsAddr", "HERALD_METRICS_ADDR", "--metrics-addr"}},
		{"localaws in serve", []string{"serve", "--http-addr", "127.0.0.1:0"}, map[string]string{"HERALD_LOCALAWS_ADDR": busy}, []string{"aws.localawsAddr", "HERALD_LOCALAWS_ADDR"}},
		{"localaws command", []string{"localaws", "--addr", busy}, nil, []string{"aws.localawsAddr", "HERALD_LOCALAWS_ADDR", "--addr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"HERALD_LOCALAWS_ADDR": testkit.FreeAddr(t)}
			for k, v := range tt.env {
				env[k] = v
			}
			args := append(tt.args, "--data-dir", t.TempDir())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := run(ctx, args, io.Discard, func(k string) string { return env[k] })
			if err == nil {
				t.Fatal("started on a taken port")
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// `herald localaws -h` lists its own flags, not serve's.
func TestLocalAWSHelpHasItsOwnFlags(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"localaws", "-h"}, &out, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-addr", "-data-dir", "-cors-origins", "HERALD_LOCALAWS_ADDR"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	for _, not := range []string{"-roles", "-http-addr", "-mqtt-addr"} {
		if strings.Contains(out.String(), not) {
			t.Errorf("help lists serve's %q:\n%s", not, out.String())
		}
	}
}
