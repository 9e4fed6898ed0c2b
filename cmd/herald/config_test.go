package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func loadTest(t *testing.T, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return loadConfig(fs, args, func(k string) string { return env[k] })
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(file, []byte("httpAddr: ':9000'\nmqttAddr: 127.0.0.1:1883\nroles: [web]\nprocessor: {workers: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(*Config) bool
	}{
		{"defaults", nil, nil, func(c *Config) bool {
			return c.HTTPAddr == ":8080" && c.DataDir == "./data" && reflect.DeepEqual(c.Roles, []string{"broker", "web", "processor"}) &&
				c.Broker.Mode == "embedded" && c.AWS.Mode == "local" && c.AWS.LocalAddr == "127.0.0.1:4566" && *c.AWS.LocalEmbed
		}},
		{"file", []string{"--config", file}, nil, func(c *Config) bool {
			return c.HTTPAddr == ":9000" && c.MQTTAddr == "127.0.0.1:1883" && reflect.DeepEqual(c.Roles, []string{"web"}) && c.Processor.Workers == 3
		}},
		{"env over file", nil, map[string]string{"HERALD_CONFIG": file, "HERALD_HTTP_ADDR": ":9100", "HERALD_ROLES": "broker,web", "HERALD_PROCESSOR_VISIBILITY": "5s", "HERALD_LOCALAWS_EMBED": "false"}, func(c *Config) bool {
			return c.HTTPAddr == ":9100" && reflect.DeepEqual(c.Roles, []string{"broker", "web"}) && c.Processor.Visibility == 5*time.Second && !*c.AWS.LocalEmbed
		}},
		{"flag over env", []string{"--http-addr", ":9200", "--roles", "processor"}, map[string]string{"HERALD_CONFIG": file, "HERALD_HTTP_ADDR": ":9100"}, func(c *Config) bool {
			return c.HTTPAddr == ":9200" && reflect.DeepEqual(c.Roles, []string{"processor"})
		}},
		{"external broker env", nil, map[string]string{"HERALD_BROKER_MODE": "mqtt", "HERALD_BROKER_URL": "mqtts://b:8883", "HERALD_BROKER_CONNECTIONS": "4", "HERALD_FEDERATION_URL": "mqtt://up:1883"}, func(c *Config) bool {
			return c.Broker.Mode == "mqtt" && c.Broker.URL == "mqtts://b:8883" && c.Broker.Connections == 4 && c.Broker.Federation.URL == "mqtt://up:1883"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadTest(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("got %+v", c)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("htpAddr: ':1'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"unknown role", []string{"--roles", "broker,chef"}, nil},
		{"unknown yaml field", []string{"--config", bad}, nil},
		{"missing file", []string{"--config", "/nonexistent/herald.yaml"}, nil},
		{"bad broker mode", nil, map[string]string{"HERALD_BROKER_MODE": "carrier-pigeon"}},
		{"external mode without url", nil, map[string]string{"HERALD_BROKER_MODE": "mqtt"}},
		{"bad aws mode", nil, map[string]string{"HERALD_AWS_MODE": "gcp"}},
		{"bad workers", nil, map[string]string{"HERALD_PROCESSOR_WORKERS": "many"}},
		{"bad embed flag", nil, map[string]string{"HERALD_LOCALAWS_EMBED": "perhaps"}},
		{"stray argument", []string{"extra"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadTest(t, tt.args, tt.env); err == nil {
				t.Fatal("loadConfig succeeded, want an error")
			}
		})
	}
}

// TestExampleConfigParses keeps docs/herald.example.yaml in step with Config:
// unknown fields are refused, so a renamed setting fails here.
func TestExampleConfigParses(t *testing.T) {
	c, err := loadTest(t, []string{"--config", "../../docs/herald.example.yaml"}, nil)
	if err != nil {
		t.Fatalf("docs/herald.example.yaml: %v", err)
	}
	if c.HTTPAddr != ":8080" || c.AWS.Bucket != "herald" {
		t.Fatalf("example config: got %+v", c)
	}
}
