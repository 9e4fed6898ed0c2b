package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// configFlag picks the configuration flags a command offers; --config is
// always there.
type configFlag uint

const (
	flagHTTPAddr configFlag = 1 << iota
	flagMQTTAddr
	flagMetricsAddr
	flagDataDir
	flagRoles
	flagLog
	flagLocalawsAddr // --addr of `herald localaws`

	// serveFlags are `herald serve`'s.
	serveFlags = flagHTTPAddr | flagMQTTAddr | flagMetricsAddr | flagDataDir | flagRoles | flagLog
)

// loadConfig builds `herald serve`'s configuration from defaults, the YAML
// file, the environment and flags, in that order of precedence (flags win).
func loadConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (*Config, error) {
	return loadConfigWith(fs, args, getenv, serveFlags)
}

// loadConfigWith is loadConfig for a command offering the flags in which.
func loadConfigWith(fs *flag.FlagSet, args []string, getenv func(string) string, which configFlag) (*Config, error) {
	file := fs.String("config", "", "YAML config file (env HERALD_CONFIG)")
	var httpAddr, mqttAddr, metricsAddr, dataDir, localawsAddr, logLevel, logFmt string
	var roles stringList
	if which&flagHTTPAddr != 0 {
		fs.StringVar(&httpAddr, "http-addr", "", "HTTP API, demo page and /mqtt address (httpAddr, env HERALD_HTTP_ADDR, default :8080)")
	}
	if which&flagMQTTAddr != 0 {
		fs.StringVar(&mqttAddr, "mqtt-addr", "", "plain MQTT TCP listener, e.g. 127.0.0.1:1883 (mqttAddr, env HERALD_MQTT_ADDR, default off)")
	}
	if which&flagMetricsAddr != 0 {
		fs.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics here instead of on the HTTP address, e.g. 127.0.0.1:9090 (metricsAddr, env HERALD_METRICS_ADDR)")
	}
	if which&flagLocalawsAddr != 0 {
		fs.StringVar(&localawsAddr, "addr", "", "S3 + SQS endpoint address (aws.localawsAddr, env HERALD_LOCALAWS_ADDR, default 127.0.0.1:4566)")
	}
	if which&flagDataDir != 0 {
		fs.StringVar(&dataDir, "data-dir", "", "data directory (dataDir, env HERALD_DATA_DIR, default ./data)")
	}
	if which&flagRoles != 0 {
		fs.Var(&roles, "roles", "comma-separated roles: broker,web,processor (roles, env HERALD_ROLES)")
	}
	if which&flagLog != 0 {
		fs.StringVar(&logLevel, "log-level", "", "debug|info|warn|error (log.level, env HERALD_LOG_LEVEL)")
		fs.StringVar(&logFmt, "log-format", "", "text|json (log.format, env HERALD_LOG_FORMAT)")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg := &Config{}
	if err := cfg.readFile(first(*file, getenv("HERALD_CONFIG"))); err != nil {
		return nil, err
	}
	if err := cfg.readEnv(getenv); err != nil {
		return nil, err
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.HTTPAddr, httpAddr)
	set(&cfg.MQTTAddr, mqttAddr)
	set(&cfg.MetricsAddr, metricsAddr)
	set(&cfg.DataDir, dataDir)
	set(&cfg.AWS.LocalawsAddr, localawsAddr)
	set(&cfg.Log.Level, logLevel)
	set(&cfg.Log.Format, logFmt)
	if len(roles) > 0 {
		cfg.Roles = toRoles(roles)
	}
	cfg.setDefaults()
	return cfg, cfg.validate()
}

// readFile decodes the YAML file at path, if any. Unknown settings and
// values of the wrong kind are errors naming the YAML path and line, so a
// typo never silently falls back to a default.
func (c *Config) readFile(path string) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		// A syntax error: yaml.v3 names the line and what it expected.
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file: every default
	}
	if err := checkYAML(&doc, reflect.TypeFor[Config](), ""); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := doc.Decode(c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// envSetting is one HERALD_* variable and how it sets its field.
type envSetting struct {
	name string
	set  func(v string) error
}

// envSettings is every HERALD_* variable a configuration reads (besides
// HERALD_CONFIG and HERALD_DEMO_API_KEY), each named after its YAML field
// and the Config field it sets; docs/herald.example.yaml lists them all (a
// test checks both ways).
func (c *Config) envSettings() []envSetting {
	return []envSetting{
		{"HERALD_HTTP_ADDR", str(&c.HTTPAddr)},
		{"HERALD_MQTT_ADDR", str(&c.MQTTAddr)},
		{"HERALD_METRICS_ADDR", str(&c.MetricsAddr)},
		{"HERALD_DATA_DIR", str(&c.DataDir)},
		{"HERALD_ROLES", func(v string) error { c.Roles = toRoles(splitList(v)); return nil }},
		{"HERALD_PUBLIC_URL", str(&c.PublicURL)},
		{"HERALD_DEMO", boolean(&c.Demo)},
		{"HERALD_LOG_LEVEL", str(&c.Log.Level)},
		{"HERALD_LOG_FORMAT", str(&c.Log.Format)},
		{"HERALD_BROKER_MODE", func(v string) error { c.Broker.Mode = BrokerMode(v); return nil }},
		{"HERALD_BROKER_URL", str(&c.Broker.URL)},
		{"HERALD_BROKER_MAX_CONNECTIONS", integer(&c.Broker.MaxConnections, 1)},
		{"HERALD_BROKER_WEBSOCKET_IO", str(&c.Broker.WebSocketIO)},
		{"HERALD_BROKER_USERNAME", str(&c.Broker.Username)},
		{"HERALD_BROKER_PASSWORD", str(&c.Broker.Password)},
		{"HERALD_BROKER_CLIENT_ID", str(&c.Broker.ClientID)},
		{"HERALD_BROKER_CA_FILE", str(&c.Broker.CAFile)},
		{"HERALD_BROKER_CERT_FILE", str(&c.Broker.CertFile)},
		{"HERALD_BROKER_KEY_FILE", str(&c.Broker.KeyFile)},
		{"HERALD_BROKER_BROWSER_URL", str(&c.Broker.BrowserURL)},
		{"HERALD_BROKER_CONNECTIONS", integer(&c.Broker.Connections, 0)},
		{"HERALD_BROKER_OUTBOX_MAX", integer(&c.Broker.OutboxMax, 0)},
		{"HERALD_FEDERATION_URL", str(&c.Broker.Federation.URL)},
		{"HERALD_FEDERATION_USERNAME", str(&c.Broker.Federation.Username)},
		{"HERALD_FEDERATION_PASSWORD", str(&c.Broker.Federation.Password)},
		{"HERALD_FEDERATION_CA_FILE", str(&c.Broker.Federation.CAFile)},
		{"HERALD_IOT_ENDPOINT", str(&c.Broker.IoT.Endpoint)},
		{"HERALD_IOT_BROWSER_ROLE_ARN", str(&c.Broker.IoT.BrowserRoleARN)},
		{"HERALD_AWS_MODE", func(v string) error { c.AWS.Mode = AWSMode(v); return nil }},
		{"HERALD_AWS_REGION", str(&c.AWS.Region)},
		{"HERALD_BUCKET", str(&c.AWS.Bucket)},
		{"HERALD_QUEUE", str(&c.AWS.Queue)},
		{"HERALD_LOCALAWS_ADDR", str(&c.AWS.LocalawsAddr)},
		{"HERALD_LOCALAWS_EMBED", boolean(&c.AWS.LocalawsEmbed)},
		{"HERALD_LOCALAWS_ABORT_INCOMPLETE_AFTER", func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("want a duration such as 24h (negative: never)")
			}
			c.AWS.LocalawsAbortIncompleteAfter = d
			return nil
		}},
		{"HERALD_PROCESSOR_CONVERSIONS", integer(&c.Processor.Conversions, 1)},
		{"HERALD_PROCESSOR_WORKERS", integer(&c.Processor.Workers, 1)},
		{"HERALD_PROCESSOR_PREFETCH", integer(&c.Processor.Prefetch, 1)},
		{"HERALD_PROCESSOR_VISIBILITY", duration(&c.Processor.Visibility, time.Second)},
		{"HERALD_PROCESSOR_QUEUE_SAMPLE_INTERVAL", duration(&c.Processor.QueueSampleInterval, 100*time.Millisecond)},
		{"HERALD_PROCESSOR_SOURCE_BUCKETS", func(v string) error { c.Processor.SourceBuckets = splitList(v); return nil }},
	}
}

// readEnv applies the HERALD_* variables that are set. A variable that
// once named a setting now called otherwise is an error naming the new
// one, rather than a setting silently ignored.
func (c *Config) readEnv(getenv func(string) string) error {
	renamed := map[string]string{
		"HERALD_BROKER_MAX_QUEUED": "HERALD_BROKER_OUTBOX_MAX (broker.outboxMax)",
		"HERALD_MAX_CONNECTIONS":   "HERALD_BROKER_MAX_CONNECTIONS (broker.maxConnections)",
	}
	for old, now := range renamed {
		if getenv(old) != "" {
			return fmt.Errorf("%s is now called %s", old, now)
		}
	}
	for _, s := range c.envSettings() {
		if v := getenv(s.name); v != "" {
			if err := s.set(v); err != nil {
				return fmt.Errorf("%s=%q: %w", s.name, v, err)
			}
		}
	}
	return nil
}

func str(dst *string) func(string) error {
	return func(v string) error { *dst = v; return nil }
}

func integer(dst *int, least int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < least {
			return fmt.Errorf("want an integer of at least %d", least)
		}
		*dst = n
		return nil
	}
}

func boolean(dst **bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*dst = &b
		return nil
	}
}

func duration(dst *time.Duration, least time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < least {
			return fmt.Errorf("want a duration of at least %s", least)
		}
		*dst = d
		return nil
	}
}

type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error {
	*l = splitList(s)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func toRoles(names []string) []Role {
	out := make([]Role, len(names))
	for i, n := range names {
		out[i] = Role(n)
	}
	return out
}
