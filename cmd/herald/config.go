package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/heraldgw/herald/processor/convert"
	"github.com/heraldgw/herald/tenant"
)

// Config is herald.yaml. Every field has a default that runs everything
// locally; HERALD_* variables override the file and flags override both.
type Config struct {
	HTTPAddr string   `yaml:"httpAddr"` // HERALD_HTTP_ADDR, --http-addr; default ":8080"
	MQTTAddr string   `yaml:"mqttAddr"` // HERALD_MQTT_ADDR, --mqtt-addr; default off
	DataDir  string   `yaml:"dataDir"`  // HERALD_DATA_DIR, --data-dir; default "./data"
	Roles    []string `yaml:"roles"`    // HERALD_ROLES, --roles; default broker,web,processor
	// PublicURL is the base URL browsers reach the gateway at
	// ("https://herald.example.com"); empty derives it from each request.
	PublicURL string    `yaml:"publicURL"`
	Log       LogConfig `yaml:"log"`
	Broker    BrokerCfg `yaml:"broker"`
	AWS       AWSConfig `yaml:"aws"`
	// Apps are the tenants. Empty means one "demo" app that allows anonymous
	// sessions from the gateway's own origin.
	Apps      []tenant.App `yaml:"apps"`
	Processor ProcessorCfg `yaml:"processor"`
	// ShutdownTimeout bounds graceful shutdown. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
}

// LogConfig selects the log format and level.
type LogConfig struct {
	Level  string `yaml:"level"`  // HERALD_LOG_LEVEL: debug|info|warn|error; default info
	Format string `yaml:"format"` // HERALD_LOG_FORMAT: text|json; default text
}

// BrokerCfg selects and tunes the broker.
type BrokerCfg struct {
	Mode string `yaml:"mode"` // HERALD_BROKER_MODE: embedded|mqtt|iot-core; default embedded
	URL  string `yaml:"url"`  // HERALD_BROKER_URL: external broker URL
	// MaxConnections etc. tune the embedded broker; zero keeps its defaults.
	MaxConnections int           `yaml:"maxConnections"`
	MaxPacketSize  int           `yaml:"maxPacketSize"`
	MaxQueued      int           `yaml:"maxQueued"`
	MaxInflight    int           `yaml:"maxInflight"`
	KeepAliveMax   time.Duration `yaml:"keepAliveMax"`
	SessionExpiry  time.Duration `yaml:"sessionExpiry"`
	ConnectRate    float64       `yaml:"connectRatePerIP"`
	// WebSocketIO is how the embedded broker reads WebSockets:
	// epoll (Linux default) or goroutine; HERALD_BROKER_WEBSOCKET_IO.
	WebSocketIO string `yaml:"websocketIO"`

	// External broker client settings (modes mqtt and iot-core, and a
	// processor-only process publishing to a gateway): HERALD_BROKER_*.
	Username   string `yaml:"username"`   // HERALD_BROKER_USERNAME
	Password   string `yaml:"password"`   // HERALD_BROKER_PASSWORD
	ClientID   string `yaml:"clientId"`   // HERALD_BROKER_CLIENT_ID; default svc-herald-<random>
	CAFile     string `yaml:"caFile"`     // HERALD_BROKER_CA_FILE: PEM roots for the broker's certificate
	CertFile   string `yaml:"certFile"`   // HERALD_BROKER_CERT_FILE: client certificate (mutual TLS, IoT Core)
	KeyFile    string `yaml:"keyFile"`    // HERALD_BROKER_KEY_FILE
	BrowserURL string `yaml:"browserURL"` // HERALD_BROKER_BROWSER_URL: what browsers connect to in mqtt mode
	// Connections is how many publisher connections to open (IoT Core
	// allows 100 publishes/s each); HERALD_BROKER_CONNECTIONS; default 1.
	Connections int `yaml:"connections"`
	// OutboxMax bounds the on-disk outbound queue kept while the broker is
	// unreachable; HERALD_BROKER_MAX_QUEUED.
	OutboxMax int `yaml:"outboxMax"`
	// Federation links embedded replicas through an upstream broker.
	Federation FederationCfg `yaml:"federation"`
	// IoT configures browser sessions for AWS IoT Core (mode iot-core).
	IoT IoTCfg `yaml:"iot"`
}

// FederationCfg is the upstream broker replicas share (HERALD_FEDERATION_*).
type FederationCfg struct {
	URL      string `yaml:"url"`      // HERALD_FEDERATION_URL; empty = no federation
	Username string `yaml:"username"` // HERALD_FEDERATION_USERNAME
	Password string `yaml:"password"` // HERALD_FEDERATION_PASSWORD
	CAFile   string `yaml:"caFile"`   // HERALD_FEDERATION_CA_FILE
}

// IoTCfg configures AWS IoT Core sessions (HERALD_IOT_*).
type IoTCfg struct {
	Endpoint       string `yaml:"endpoint"`       // HERALD_IOT_ENDPOINT: the account's ATS data endpoint
	BrowserRoleARN string `yaml:"browserRoleArn"` // HERALD_IOT_BROWSER_ROLE_ARN: role assumed per session
}

// ProcessorCfg tunes the processor role.
type ProcessorCfg struct {
	// Conversions is how many converter runs (CPU-bound) go at once;
	// HERALD_PROCESSOR_CONVERSIONS; default one per CPU.
	Conversions int `yaml:"conversions"`
	// Workers is how many job steps are in flight, so one step's S3 and
	// queue I/O overlaps another's conversion; HERALD_PROCESSOR_WORKERS;
	// default 2 × conversions.
	Workers int `yaml:"workers"`
	// InputCacheBytes bounds the local cache of downloaded inputs shared by
	// a job's output steps; default 1 GiB, negative turns it off.
	InputCacheBytes int64 `yaml:"inputCacheBytes"`
	// Visibility is how long a step's message stays hidden after its last
	// heartbeat, i.e. how soon a killed processor's work is redone;
	// HERALD_PROCESSOR_VISIBILITY; default 60s.
	Visibility time.Duration `yaml:"visibility"`
	// SourceBuckets lists buckets besides the uploads bucket whose objects
	// POST /v1/jobs may convert; HERALD_PROCESSOR_SOURCE_BUCKETS
	// (comma-separated); default none.
	SourceBuckets []string `yaml:"sourceBuckets"`
	// Convert sets converter limits and pipelines; empty pipelines mean the
	// built-in image and audio pipelines.
	Convert convert.Config `yaml:"convert"`
}

// AWSConfig selects real AWS or the embedded localaws.
type AWSConfig struct {
	Mode      string `yaml:"mode"`         // HERALD_AWS_MODE: local|aws; default local
	Region    string `yaml:"region"`       // HERALD_AWS_REGION; default us-east-1
	Bucket    string `yaml:"bucket"`       // HERALD_BUCKET; default herald
	Queue     string `yaml:"queue"`        // HERALD_QUEUE; default herald-events (name or URL)
	LocalAddr string `yaml:"localawsAddr"` // HERALD_LOCALAWS_ADDR
	// LocalEmbed says whether a web process hosts localaws itself
	// (HERALD_LOCALAWS_EMBED); default true. Set false on all but one
	// replica so they share one.
	LocalEmbed *bool  `yaml:"localawsEmbed"`
	AccessKey  string `yaml:"localawsAccessKey"` // default test
	SecretKey  string `yaml:"localawsSecretKey"` // default test
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

// loadConfig builds the configuration from defaults, the YAML file, the
// environment and flags, in that order of precedence (flags win).
func loadConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (*Config, error) {
	var (
		file             = fs.String("config", "", "YAML config file (env HERALD_CONFIG)")
		httpAddr         = fs.String("http-addr", "", "HTTP API, demo page and /mqtt address (env HERALD_HTTP_ADDR, default :8080)")
		mqttAddr         = fs.String("mqtt-addr", "", "plain MQTT TCP listener, e.g. 127.0.0.1:1883 (env HERALD_MQTT_ADDR, default off)")
		dataDir          = fs.String("data-dir", "", "broker storage and localaws data (env HERALD_DATA_DIR, default ./data)")
		roles            stringList
		logLevel, logFmt string
	)
	fs.Var(&roles, "roles", "comma-separated roles: broker,web,processor (env HERALD_ROLES)")
	fs.StringVar(&logLevel, "log-level", "", "debug|info|warn|error (env HERALD_LOG_LEVEL)")
	fs.StringVar(&logFmt, "log-format", "", "text|json (env HERALD_LOG_FORMAT)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg := &Config{}
	path := first(*file, getenv("HERALD_CONFIG"))
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	env := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	env(&cfg.HTTPAddr, "HERALD_HTTP_ADDR")
	env(&cfg.MQTTAddr, "HERALD_MQTT_ADDR")
	env(&cfg.DataDir, "HERALD_DATA_DIR")
	env(&cfg.PublicURL, "HERALD_PUBLIC_URL")
	env(&cfg.Log.Level, "HERALD_LOG_LEVEL")
	env(&cfg.Log.Format, "HERALD_LOG_FORMAT")
	env(&cfg.Broker.Mode, "HERALD_BROKER_MODE")
	env(&cfg.Broker.URL, "HERALD_BROKER_URL")
	env(&cfg.Broker.WebSocketIO, "HERALD_BROKER_WEBSOCKET_IO")
	env(&cfg.AWS.Mode, "HERALD_AWS_MODE")
	env(&cfg.AWS.Region, "HERALD_AWS_REGION")
	env(&cfg.AWS.Bucket, "HERALD_BUCKET")
	env(&cfg.AWS.Queue, "HERALD_QUEUE")
	env(&cfg.AWS.LocalAddr, "HERALD_LOCALAWS_ADDR")
	env(&cfg.Broker.Username, "HERALD_BROKER_USERNAME")
	env(&cfg.Broker.Password, "HERALD_BROKER_PASSWORD")
	env(&cfg.Broker.ClientID, "HERALD_BROKER_CLIENT_ID")
	env(&cfg.Broker.CAFile, "HERALD_BROKER_CA_FILE")
	env(&cfg.Broker.CertFile, "HERALD_BROKER_CERT_FILE")
	env(&cfg.Broker.KeyFile, "HERALD_BROKER_KEY_FILE")
	env(&cfg.Broker.BrowserURL, "HERALD_BROKER_BROWSER_URL")
	env(&cfg.Broker.Federation.URL, "HERALD_FEDERATION_URL")
	env(&cfg.Broker.Federation.Username, "HERALD_FEDERATION_USERNAME")
	env(&cfg.Broker.Federation.Password, "HERALD_FEDERATION_PASSWORD")
	env(&cfg.Broker.Federation.CAFile, "HERALD_FEDERATION_CA_FILE")
	env(&cfg.Broker.IoT.Endpoint, "HERALD_IOT_ENDPOINT")
	env(&cfg.Broker.IoT.BrowserRoleARN, "HERALD_IOT_BROWSER_ROLE_ARN")
	ints := []struct {
		name string
		min  int
		dst  *int
	}{
		{"HERALD_MAX_CONNECTIONS", 1, &cfg.Broker.MaxConnections},
		{"HERALD_BROKER_CONNECTIONS", 0, &cfg.Broker.Connections},
		{"HERALD_BROKER_MAX_QUEUED", 0, &cfg.Broker.OutboxMax},
		{"HERALD_PROCESSOR_WORKERS", 1, &cfg.Processor.Workers},
		{"HERALD_PROCESSOR_CONVERSIONS", 1, &cfg.Processor.Conversions},
	}
	for _, e := range ints {
		if v := getenv(e.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < e.min {
				return nil, fmt.Errorf("%s=%q: want an integer of at least %d", e.name, v, e.min)
			}
			*e.dst = n
		}
	}
	if v := getenv("HERALD_LOCALAWS_EMBED"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("HERALD_LOCALAWS_EMBED=%q: want true or false", v)
		}
		cfg.AWS.LocalEmbed = &b
	}
	if v := getenv("HERALD_ROLES"); v != "" {
		cfg.Roles = splitList(v)
	}
	if v := getenv("HERALD_PROCESSOR_SOURCE_BUCKETS"); v != "" {
		cfg.Processor.SourceBuckets = splitList(v)
	}
	if v := getenv("HERALD_PROCESSOR_VISIBILITY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("HERALD_PROCESSOR_VISIBILITY=%q: want a duration of at least 1s", v)
		}
		cfg.Processor.Visibility = d
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.HTTPAddr, *httpAddr)
	set(&cfg.MQTTAddr, *mqttAddr)
	set(&cfg.DataDir, *dataDir)
	set(&cfg.Log.Level, logLevel)
	set(&cfg.Log.Format, logFmt)
	if len(roles) > 0 {
		cfg.Roles = roles
	}
	cfg.setDefaults()
	return cfg, cfg.validate()
}

func (c *Config) setDefaults() {
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	set(&c.HTTPAddr, ":8080")
	set(&c.DataDir, "./data")
	set(&c.Log.Level, "info")
	set(&c.Log.Format, "text")
	set(&c.Broker.Mode, "embedded")
	set(&c.AWS.Mode, "local")
	set(&c.AWS.Region, "us-east-1")
	set(&c.AWS.Bucket, "herald")
	set(&c.AWS.Queue, "herald-events")
	set(&c.AWS.LocalAddr, "127.0.0.1:4566")
	set(&c.AWS.AccessKey, "test")
	set(&c.AWS.SecretKey, "test")
	if len(c.Roles) == 0 {
		c.Roles = []string{"broker", "web", "processor"}
	}
	if c.AWS.LocalEmbed == nil {
		embed := true
		c.AWS.LocalEmbed = &embed
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
}

func (c *Config) validate() error {
	for _, r := range c.Roles {
		switch r {
		case "broker", "web", "processor":
		default:
			return fmt.Errorf("unknown role %q (want broker, web, processor)", r)
		}
	}
	switch c.Broker.Mode {
	case "embedded", "mqtt", "iot-core":
	default:
		return fmt.Errorf("broker mode %q: want embedded, mqtt or iot-core", c.Broker.Mode)
	}
	switch c.AWS.Mode {
	case "local", "aws":
	default:
		return fmt.Errorf("aws mode %q: want local or aws", c.AWS.Mode)
	}
	if c.Broker.Mode != "embedded" && c.Broker.URL == "" {
		return fmt.Errorf("broker mode %q needs HERALD_BROKER_URL", c.Broker.Mode)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log format %q: want text or json", c.Log.Format)
	}
	return nil
}

func (c *Config) has(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}

func (c *Config) logger(w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", c.Log.Level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// apps returns the configured apps, or the local demo app. The demo app's
// signing secret is kept in the data dir so browser tokens (and persistent
// MQTT sessions) survive a restart; its API key comes from
// HERALD_DEMO_API_KEY or is random per start and logged.
func (c *Config) apps(getenv func(string) string, origins []string, log *slog.Logger) ([]tenant.App, error) {
	if len(c.Apps) > 0 {
		return c.Apps, nil
	}
	secret, err := persistentSecret(filepath.Join(c.DataDir, "demo-secret"))
	if err != nil {
		return nil, err
	}
	key := getenv("HERALD_DEMO_API_KEY")
	if key == "" {
		key = "demo_" + randomString(24)
		log.Info("demo app api key (set HERALD_DEMO_API_KEY to fix it)", "app", "demo", "api_key", key)
	}
	return []tenant.App{{ID: "demo", APIKey: key, Secret: secret, Origins: origins, AllowAnonymous: true}}, nil
}

func persistentSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	s := randomString(32)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
