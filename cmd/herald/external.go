package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/broker"
	"github.com/heraldgw/herald/federation"
	"github.com/heraldgw/herald/iotcore"
	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/web"
)

// external is what the broker mode adds to a process beyond the embedded
// broker: a publisher to another broker, and how browsers reach it.
type external struct {
	// Publisher replaces the in-process publisher; nil keeps it.
	Publisher bridge.Publisher
	// Sessions and MQTTURL complete POST /v1/sessions (web.Config).
	Sessions web.SessionMinter
	MQTTURL  string
}

// externalEnv are the settings of the external modes, taken from the
// configuration (broker.* in herald.yaml, HERALD_BROKER_* and
// HERALD_FEDERATION_* in the environment; see docs/config.md).
type externalEnv struct {
	username, password, clientID string
	caFile, certFile, keyFile    string
	browserURL                   string
	connections, maxQueued       int
	fedURL, fedUser, fedPassword string
	fedCAFile                    string
}

func readExternalEnv(c BrokerCfg) externalEnv {
	return externalEnv{
		username: c.Username, password: c.Password, clientID: c.ClientID,
		caFile: c.CAFile, certFile: c.CertFile, keyFile: c.KeyFile, browserURL: c.BrowserURL,
		connections: c.Connections, maxQueued: c.OutboxMax,
		fedURL: c.Federation.URL, fedUser: c.Federation.Username, fedPassword: c.Federation.Password, fedCAFile: c.Federation.CAFile,
	}
}

// startExternal wires the broker mode:
//
//   - embedded, broker role, HERALD_FEDERATION_URL set: the embedded broker
//     follows its browsers' channels on the upstream broker, and this
//     process publishes its events upstream;
//   - embedded, no broker role, HERALD_BROKER_URL set (a processor-only
//     process): events go to the gateway's MQTT listener as a service, one
//     connection per configured app (a service may publish only for its own
//     app, with that app's API key);
//   - mqtt: events go to the external broker; browsers get
//     HERALD_BROKER_BROWSER_URL;
//   - iot-core: events go to AWS IoT Core over mutual TLS; browsers get a
//     presigned WebSocket URL (package iotcore).
func startExternal(ctx context.Context, cfg *Config, p *parts, b *broker.Broker, reg *tenant.Registry,
	ready map[string]func() bool, metrics prometheus.Registerer, log *slog.Logger) (external, error) {
	env := readExternalEnv(cfg.Broker)
	var err error
	queueDir := filepath.Join(cfg.DataDir, "bridge-queue")
	base := bridge.MQTTConfig{
		Username: env.username, Password: env.password, ClientID: first(env.clientID, "svc-herald-"+randomString(10)),
		QueueDir: queueDir, Connections: env.connections, MaxQueued: env.maxQueued,
		Logger: log.With("part", "bridge"), Metrics: metrics,
	}
	switch cfg.Broker.Mode {
	case "embedded":
		if b != nil && env.fedURL != "" {
			return startFederation(ctx, cfg, p, b, env, base, ready, metrics, log)
		}
		if b == nil && cfg.Broker.URL != "" {
			return startServicePublishers(ctx, cfg, p, reg, base, log)
		}
		return external{}, nil
	case "mqtt", "iot-core":
		c := base
		c.URL = cfg.Broker.URL
		if c.TLS, err = loadTLS(env.caFile, env.certFile, env.keyFile); err != nil {
			return external{}, err
		}
		ext := external{MQTTURL: env.browserURL}
		if cfg.Broker.Mode == "iot-core" {
			c.PublishRate = bridge.IoTCorePublishRate
			if ext.Sessions, err = iotSessions(ctx, cfg); err != nil {
				return external{}, err
			}
		}
		pub, err := runBridge(ctx, p, c, log)
		if err != nil {
			return external{}, err
		}
		ext.Publisher = pub
		return ext, nil
	}
	return external{}, fmt.Errorf("broker mode %q", cfg.Broker.Mode)
}

func startFederation(ctx context.Context, cfg *Config, p *parts, b *broker.Broker, env externalEnv, base bridge.MQTTConfig,
	ready map[string]func() bool, metrics prometheus.Registerer, log *slog.Logger) (external, error) {
	tlsCfg, err := loadTLS(env.fedCAFile, "", "")
	if err != nil {
		return external{}, err
	}
	fed, err := federation.New(federation.Config{
		URL: env.fedURL, ClientID: "herald-fed-" + randomString(12), Username: env.fedUser, Password: env.fedPassword,
		TLS: tlsCfg, Logger: log.With("part", "federation"), Metrics: metrics,
	}, b)
	if err != nil {
		return external{}, err
	}
	if err := b.ObserveChannels(fed); err != nil {
		return external{}, err
	}
	p.run(ctx, "federation", log, fed.Run)
	ready["federation"] = fed.Ready
	c := base
	c.URL, c.Username, c.Password, c.TLS = env.fedURL, env.fedUser, env.fedPassword, tlsCfg
	pub, err := runBridge(ctx, p, c, log)
	if err != nil {
		return external{}, err
	}
	return external{Publisher: pub}, nil
}

func startServicePublishers(ctx context.Context, cfg *Config, p *parts, reg *tenant.Registry, base bridge.MQTTConfig, log *slog.Logger) (external, error) {
	apps := bridge.Apps{}
	for _, id := range reg.IDs() {
		app, err := reg.App(id)
		if err != nil {
			return external{}, err
		}
		c := base
		c.URL, c.Username, c.Password = cfg.Broker.URL, app.ID, app.APIKey
		c.ClientID = "svc-herald-" + randomString(10)
		c.QueueDir = filepath.Join(base.QueueDir, app.ID)
		c.Name = "bridge-" + app.ID
		pub, err := runBridge(ctx, p, c, log)
		if err != nil {
			return external{}, err
		}
		apps[app.ID] = pub
	}
	return external{Publisher: apps}, nil
}

func runBridge(ctx context.Context, p *parts, c bridge.MQTTConfig, log *slog.Logger) (*bridge.MQTT, error) {
	pub, err := bridge.NewMQTT(ctx, c)
	if err != nil {
		return nil, err
	}
	name := first(c.Name, "bridge")
	p.run(ctx, name, log, pub.Run)
	return pub, nil
}

// loadTLS builds a client TLS config from PEM files; all empty means nil
// (system roots, no client certificate).
func loadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("broker CA file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker CA file %s: no PEM certificates", caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("broker client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

var _ web.SessionMinter = (*iotcore.Minter)(nil)

// iotSessions builds the AWS IoT Core session minter from broker.iot
// (HERALD_IOT_ENDPOINT, HERALD_IOT_BROWSER_ROLE_ARN), with STS reached
// through the default credential chain.
func iotSessions(ctx context.Context, cfg *Config) (web.SessionMinter, error) {
	endpoint, role := cfg.Broker.IoT.Endpoint, cfg.Broker.IoT.BrowserRoleARN
	if endpoint == "" || role == "" {
		return nil, fmt.Errorf("broker mode iot-core needs HERALD_IOT_ENDPOINT and HERALD_IOT_BROWSER_ROLE_ARN")
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.AWS.Region))
	if err != nil {
		return nil, fmt.Errorf("aws config for sts: %w", err)
	}
	return iotcore.NewMinter(iotcore.Config{Endpoint: endpoint, Region: cfg.AWS.Region, RoleARN: role, STS: sts.NewFromConfig(ac)})
}
