package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heraldgw/herald/processor/convert"
	"github.com/heraldgw/herald/tenant"
)

// Config is herald.yaml. Every field has a default that runs everything
// locally; HERALD_* variables override the file and flags override both.
type Config struct {
	HTTPAddr string `yaml:"httpAddr"` // HERALD_HTTP_ADDR, --http-addr; default ":8080"
	MQTTAddr string `yaml:"mqttAddr"` // HERALD_MQTT_ADDR, --mqtt-addr; default off
	// MetricsAddr serves GET /metrics on a listener of its own (and not on
	// HTTPAddr), e.g. "127.0.0.1:9090"; HERALD_METRICS_ADDR, --metrics-addr;
	// default empty: /metrics on HTTPAddr. Metric labels name apps, so a
	// multi-tenant gateway should keep them off its public port.
	MetricsAddr string `yaml:"metricsAddr"`
	DataDir     string `yaml:"dataDir"` // HERALD_DATA_DIR, --data-dir; default "./data"
	Roles       []Role `yaml:"roles"`   // HERALD_ROLES, --roles; default broker,web,processor
	// PublicURL is the base URL browsers reach the gateway at
	// ("https://herald.example.com"); empty derives it from each request.
	PublicURL string       `yaml:"publicURL"`
	Log       LogConfig    `yaml:"log"`
	Broker    BrokerConfig `yaml:"broker"`
	AWS       AWSConfig    `yaml:"aws"`
	// Apps are the tenants.
	Apps []tenant.App `yaml:"apps"`
	// Demo adds the local "demo" app (anonymous sessions from the gateway's
	// own origins, the demo page's app) beside Apps; HERALD_DEMO; default
	// true. A configured app with id "demo" takes its place.
	Demo      *bool           `yaml:"demo"`
	Processor ProcessorConfig `yaml:"processor"`
	// ShutdownTimeout bounds graceful shutdown. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
}

// LogConfig selects the log format and level.
type LogConfig struct {
	Level  string `yaml:"level"`  // HERALD_LOG_LEVEL: debug|info|warn|error; default info
	Format string `yaml:"format"` // HERALD_LOG_FORMAT: text|json; default text
}

// Role is a part of the gateway a process runs (HERALD_ROLES).
type Role string

// The roles; a process runs all three by default.
const (
	RoleBroker    Role = "broker"
	RoleWeb       Role = "web"
	RoleProcessor Role = "processor"
)

// BrokerMode says which broker browsers connect to (HERALD_BROKER_MODE).
type BrokerMode string

// The broker modes.
const (
	// BrokerEmbedded is the in-process mochi broker (the default).
	BrokerEmbedded BrokerMode = "embedded"
	// BrokerMQTT is an external MQTT 5 broker (Mosquitto, EMQX).
	BrokerMQTT BrokerMode = "mqtt"
	// BrokerIoTCore is AWS IoT Core.
	BrokerIoTCore BrokerMode = "iot-core"
)

// AWSMode says where S3 and SQS are (HERALD_AWS_MODE).
type AWSMode string

// The AWS modes.
const (
	// AWSLocal is localaws (the default).
	AWSLocal AWSMode = "local"
	// AWSReal is real AWS through the default credential chain.
	AWSReal AWSMode = "aws"
)

// BrokerConfig selects and tunes the broker.
type BrokerConfig struct {
	Mode BrokerMode `yaml:"mode"` // HERALD_BROKER_MODE: embedded|mqtt|iot-core; default embedded
	URL  string     `yaml:"url"`  // HERALD_BROKER_URL: external broker URL
	// MaxConnections etc. tune the embedded broker; zero keeps its defaults.
	MaxConnections   int           `yaml:"maxConnections"` // HERALD_BROKER_MAX_CONNECTIONS
	MaxPacketSize    int           `yaml:"maxPacketSize"`
	MaxQueued        int           `yaml:"maxQueued"`
	MaxInflight      int           `yaml:"maxInflight"`
	KeepAliveMax     time.Duration `yaml:"keepAliveMax"`
	SessionExpiry    time.Duration `yaml:"sessionExpiry"`
	ConnectRatePerIP float64       `yaml:"connectRatePerIP"`
	// CompactMinFree and CompactInterval: the storage file is compacted
	// once its free pages come to CompactMinFree bytes and half the file
	// (negative: never), looked at every CompactInterval.
	CompactMinFree  int64         `yaml:"compactMinFree"`
	CompactInterval time.Duration `yaml:"compactInterval"`
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
	// OutboxMax bounds the on-disk outbound queue of each publisher
	// connection, kept while the broker is unreachable;
	// HERALD_BROKER_OUTBOX_MAX; default bridge.DefaultOutboxMax. (Not
	// MaxQueued above, which is the embedded broker's per-client queue.)
	OutboxMax int `yaml:"outboxMax"`
	// Federation links embedded replicas through an upstream broker.
	Federation FederationConfig `yaml:"federation"`
	// IoT configures browser sessions for AWS IoT Core (mode iot-core).
	IoT IoTConfig `yaml:"iot"`
}

// FederationConfig is the upstream broker replicas share (HERALD_FEDERATION_*).
type FederationConfig struct {
	URL      string `yaml:"url"`      // HERALD_FEDERATION_URL; empty = no federation
	Username string `yaml:"username"` // HERALD_FEDERATION_USERNAME
	Password string `yaml:"password"` // HERALD_FEDERATION_PASSWORD
	CAFile   string `yaml:"caFile"`   // HERALD_FEDERATION_CA_FILE
}

// IoTConfig configures AWS IoT Core sessions (HERALD_IOT_*).
type IoTConfig struct {
	Endpoint       string `yaml:"endpoint"`       // HERALD_IOT_ENDPOINT: the account's ATS data endpoint
	BrowserRoleARN string `yaml:"browserRoleArn"` // HERALD_IOT_BROWSER_ROLE_ARN: role assumed per session
}

// ProcessorConfig tunes the processor role.
type ProcessorConfig struct {
	// Conversions is how many converter runs (CPU-bound) go at once;
	// HERALD_PROCESSOR_CONVERSIONS; default one per CPU.
	Conversions int `yaml:"conversions"`
	// Workers is how many job steps are in flight, so one step's S3 and
	// queue I/O overlaps another's conversion; HERALD_PROCESSOR_WORKERS;
	// default 2 × conversions.
	Workers int `yaml:"workers"`
	// Prefetch is how many received messages a processor holds, running
	// or waiting for a worker, that workers and conversion slots are
	// shared out among fairly by app (HERALD_PROCESSOR_PREFETCH); default
	// processor.DefaultPrefetch.
	Prefetch int `yaml:"prefetch"`
	// MaxHold is how long a held message waits for a worker before it
	// goes back to the end of the queue; default 15 s.
	MaxHold time.Duration `yaml:"maxHold"`
	// InputCacheBytes bounds the local cache of downloaded inputs shared by
	// a job's output steps; default 1 GiB, negative turns it off.
	InputCacheBytes int64 `yaml:"inputCacheBytes"`
	// Visibility is how long a step's message stays hidden after its last
	// heartbeat, i.e. how soon a killed processor's work is redone;
	// HERALD_PROCESSOR_VISIBILITY; default 10s.
	Visibility time.Duration `yaml:"visibility"`
	// QueueSampleInterval is how often the queue depth gauges are read
	// with GetQueueAttributes; HERALD_PROCESSOR_QUEUE_SAMPLE_INTERVAL;
	// default 15s, negative turns sampling off.
	QueueSampleInterval time.Duration `yaml:"queueSampleInterval"`
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
	Mode   AWSMode `yaml:"mode"`   // HERALD_AWS_MODE: local|aws; default local
	Region string  `yaml:"region"` // HERALD_AWS_REGION; default us-east-1
	Bucket string  `yaml:"bucket"` // HERALD_BUCKET; default herald
	Queue  string  `yaml:"queue"`  // HERALD_QUEUE; default herald-events (name or URL)
	// LocalawsAddr is where localaws listens, or is reached by processes
	// that do not host it; HERALD_LOCALAWS_ADDR; default 127.0.0.1:4566.
	LocalawsAddr string `yaml:"localawsAddr"`
	// LocalawsEmbed says whether a web process hosts localaws itself
	// (HERALD_LOCALAWS_EMBED); default true. Set false on all but one
	// replica so they share one.
	LocalawsEmbed     *bool  `yaml:"localawsEmbed"`
	LocalawsAccessKey string `yaml:"localawsAccessKey"` // default test
	LocalawsSecretKey string `yaml:"localawsSecretKey"` // default test
	// LocalawsAbortIncompleteAfter is how long localaws keeps a multipart
	// upload that was never completed before aborting it
	// (HERALD_LOCALAWS_ABORT_INCOMPLETE_AFTER); default 24h, negative
	// never. On real S3 a lifecycle rule does this (docs/aws.md).
	LocalawsAbortIncompleteAfter time.Duration `yaml:"localawsAbortIncompleteAfter"`
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
	if c.Broker.Mode == "" {
		c.Broker.Mode = BrokerEmbedded
	}
	if c.AWS.Mode == "" {
		c.AWS.Mode = AWSLocal
	}
	set(&c.AWS.Region, "us-east-1")
	set(&c.AWS.Bucket, "herald")
	set(&c.AWS.Queue, "herald-events")
	set(&c.AWS.LocalawsAddr, "127.0.0.1:4566")
	set(&c.AWS.LocalawsAccessKey, "test")
	set(&c.AWS.LocalawsSecretKey, "test")
	if len(c.Roles) == 0 {
		c.Roles = []Role{RoleBroker, RoleWeb, RoleProcessor}
	}
	if c.Demo == nil {
		c.Demo = new(true)
	}
	if c.AWS.LocalawsEmbed == nil {
		embed := true
		c.AWS.LocalawsEmbed = &embed
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
}

func (c *Config) validate() error {
	for _, r := range c.Roles {
		switch r {
		case RoleBroker, RoleWeb, RoleProcessor:
		default:
			return fmt.Errorf("roles (HERALD_ROLES, --roles): unknown role %q; want broker, web, processor", r)
		}
	}
	switch c.Broker.Mode {
	case BrokerEmbedded, BrokerMQTT, BrokerIoTCore:
	default:
		return fmt.Errorf("broker.mode (HERALD_BROKER_MODE) %q: want embedded, mqtt or iot-core", c.Broker.Mode)
	}
	switch c.AWS.Mode {
	case AWSLocal, AWSReal:
	default:
		return fmt.Errorf("aws.mode (HERALD_AWS_MODE) %q: want local or aws", c.AWS.Mode)
	}
	if c.Broker.Mode != BrokerEmbedded && c.Broker.URL == "" {
		return fmt.Errorf("broker.mode %q needs broker.url (HERALD_BROKER_URL)", c.Broker.Mode)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format (HERALD_LOG_FORMAT, --log-format) %q: want text or json", c.Log.Format)
	}
	return nil
}

func (c *Config) has(role Role) bool { return slices.Contains(c.Roles, role) }

func (c *Config) logger(w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return nil, fmt.Errorf("log.level (HERALD_LOG_LEVEL, --log-level) %q: want debug, info, warn or error", c.Log.Level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// apps returns the configured apps and, unless demo is false, the local
// demo app beside them, so the demo page works whatever else is configured.
func (c *Config) apps(getenv func(string) string, origins []string, log *slog.Logger) ([]tenant.App, error) {
	apps := slices.Clone(c.Apps)
	hasDemo := slices.ContainsFunc(apps, func(a tenant.App) bool { return a.ID == demoApp })
	if !*c.Demo || hasDemo {
		if len(apps) == 0 {
			return nil, errors.New("no apps: demo is false (HERALD_DEMO) and apps: is empty; configure an app or leave the demo app on")
		}
		return apps, nil
	}
	demo, err := c.demoApp(getenv, origins, log)
	if err != nil {
		return nil, err
	}
	if len(apps) > 0 {
		log.Info("the demo app runs beside the configured apps; set demo: false (HERALD_DEMO=false) to turn it off", "app", demoApp)
	}
	return append(apps, demo), nil
}

// demoApp is the local demo app. Its signing secret is kept in the data dir
// so browser tokens (and persistent MQTT sessions) survive a restart; its
// API key is HERALD_DEMO_API_KEY or one generated once, and either is
// written to <dataDir>/demo-api-key for `herald publish` and the README's
// examples to read.
func (c *Config) demoApp(getenv func(string) string, origins []string, log *slog.Logger) (tenant.App, error) {
	secret, err := persistentValue(filepath.Join(c.DataDir, "demo-secret"), "", 32, func() string { return randomString(32) })
	if err != nil {
		return tenant.App{}, err
	}
	keyFile := filepath.Join(c.DataDir, demoKeyFile)
	key, err := persistentValue(keyFile, getenv("HERALD_DEMO_API_KEY"), 16, func() string { return "demo_" + randomString(24) })
	if err != nil {
		return tenant.App{}, err
	}
	log.Info("demo app api key in "+keyFile, "app", demoApp, "file", keyFile)
	return tenant.App{ID: demoApp, APIKey: key, Secret: secret, Origins: origins, AllowAnonymous: true}, nil
}

const (
	demoApp     = "demo"
	demoKeyFile = "demo-api-key"
)

// persistentValue returns want and stores it at path when want is set;
// otherwise the value stored at path (at least minLen bytes), or a new one
// from gen, stored. The file is private to the user.
func persistentValue(path, want string, minLen int, gen func() string) (string, error) {
	b, err := os.ReadFile(path)
	stored := strings.TrimSpace(string(b))
	if want == "" && err == nil && len(stored) >= minLen {
		return stored, nil
	}
	if want == "" {
		want = gen()
	} else if want == stored {
		return want, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(want+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return want, nil
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
