package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// setting names one configuration value the three ways an operator can set
// it, so an error can say what to change.
type setting struct {
	yaml, env, flag string
}

func (s setting) String() string {
	out := s.yaml + " (" + s.env
	if s.flag != "" {
		out += ", --" + s.flag
	}
	return out + ")"
}

// The listen addresses.
var (
	settingHTTPAddr     = setting{"httpAddr", "HERALD_HTTP_ADDR", "http-addr"}
	settingMQTTAddr     = setting{"mqttAddr", "HERALD_MQTT_ADDR", "mqtt-addr"}
	settingMetricsAddr  = setting{"metricsAddr", "HERALD_METRICS_ADDR", "metrics-addr"}
	settingLocalawsAddr = setting{"aws.localawsAddr", "HERALD_LOCALAWS_ADDR", ""}
	// `herald localaws` offers --addr for the same setting.
	settingLocalawsCmdAddr = setting{"aws.localawsAddr", "HERALD_LOCALAWS_ADDR", "addr"}
)

// listenError explains a failed bind: which address, which setting chose
// it, and, for the common "already in use", what to do. Errors that are not
// about listening pass through unchanged.
func listenError(err error, addr string, s setting) error {
	var op *net.OpError
	if err == nil || !errors.As(err, &op) || op.Op != "listen" {
		return err
	}
	hint := "set another address in " + s.String()
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		hint = "another process is listening there; stop it or " + hint
	case errors.Is(err, syscall.EACCES):
		hint = "ports below 1024 need privileges; " + hint
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		hint = "no interface of this machine has that address; " + hint
	}
	return fmt.Errorf("cannot listen on %s for %s: %w (%s)", addr, s.yaml, op.Err, hint)
}
