package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/federation"
	"github.com/heraldgw/herald/iotcore"
	"github.com/heraldgw/herald/web"
)

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
func (g *gateway) startExternal(ctx context.Context) error {
	c := g.cfg.Broker
	switch c.Mode {
	case BrokerEmbedded:
		if g.embedded != nil && c.Federation.URL != "" {
			return g.startFederation(ctx)
		}
		if g.embedded == nil && c.URL != "" {
			return g.startServicePublishers(ctx)
		}
		return nil
	case BrokerMQTT, BrokerIoTCore:
		bc := g.bridgeConfig()
		bc.URL = c.URL
		var err error
		if bc.TLS, err = loadTLS(c.CAFile, c.CertFile, c.KeyFile); err != nil {
			return err
		}
		g.mqttURL = c.BrowserURL
		if c.Mode == BrokerIoTCore {
			bc.PublishRate = bridge.IoTCorePublishRate
			if g.sessions, err = iotSessions(ctx, g.cfg); err != nil {
				return err
			}
		}
		return g.runBridge(ctx, bc, func(pub *bridge.MQTT) { g.pub = pub })
	}
	return fmt.Errorf("broker mode %q", c.Mode)
}

// bridgeConfig is the publisher configuration every external mode starts
// from (broker.* of the configuration).
func (g *gateway) bridgeConfig() bridge.MQTTConfig {
	c := g.cfg.Broker
	return bridge.MQTTConfig{
		Username: c.Username, Password: c.Password, ClientID: first(c.ClientID, "svc-herald-"+randomString(10)),
		QueueDir: filepath.Join(g.cfg.DataDir, "bridge-queue"), Connections: c.Connections, OutboxMax: c.OutboxMax,
		Logger: g.log.With("part", "bridge"), Metrics: g.metrics,
	}
}

func (g *gateway) startFederation(ctx context.Context) error {
	fc := g.cfg.Broker.Federation
	tlsCfg, err := loadTLS(fc.CAFile, "", "")
	if err != nil {
		return err
	}
	fed, err := federation.New(federation.Config{
		URL: fc.URL, ClientID: "herald-fed-" + randomString(12), Username: fc.Username, Password: fc.Password,
		TLS: tlsCfg, Logger: g.log.With("part", "federation"), Metrics: g.metrics,
		OnRevocation: g.applyRevocation,
	}, g.embedded)
	if err != nil {
		return err
	}
	g.fed = fed
	if err := g.embedded.ObserveChannels(fed); err != nil {
		return err
	}
	g.run(ctx, "federation", fed.Run)
	g.ready["federation"] = readyWhen(fed.Ready)
	bc := g.bridgeConfig()
	bc.URL, bc.Username, bc.Password, bc.TLS = fc.URL, fc.Username, fc.Password, tlsCfg
	return g.runBridge(ctx, bc, func(pub *bridge.MQTT) { g.pub = pub })
}

func (g *gateway) startServicePublishers(ctx context.Context) error {
	apps := bridge.Apps{}
	for _, id := range g.reg.IDs() {
		app, err := g.reg.App(id)
		if err != nil {
			return err
		}
		bc := g.bridgeConfig()
		bc.URL, bc.Username, bc.Password = g.cfg.Broker.URL, app.ID, app.APIKey
		bc.ClientID = "svc-herald-" + randomString(10)
		bc.QueueDir = filepath.Join(bc.QueueDir, app.ID)
		bc.Name = "bridge-" + app.ID
		if err := g.runBridge(ctx, bc, func(pub *bridge.MQTT) { apps[app.ID] = pub }); err != nil {
			return err
		}
	}
	g.pub = apps
	return nil
}

// runBridge runs a publisher to an external broker and hands it to use.
func (g *gateway) runBridge(ctx context.Context, c bridge.MQTTConfig, use func(*bridge.MQTT)) error {
	pub, err := bridge.NewMQTT(ctx, c)
	if err != nil {
		return err
	}
	g.run(ctx, first(c.Name, "bridge"), pub.Run)
	use(pub)
	return nil
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
