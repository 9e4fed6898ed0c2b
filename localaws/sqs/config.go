package sqs

import (
	"errors"
	"log/slog"
	"strings"
)

// SyncPolicy says when committed writes are forced to stable storage.
type SyncPolicy int

const (
	// SyncEveryCommit (the default) fsyncs every group commit before any
	// request in it is answered: an acknowledged SendMessage survives both a
	// process kill and an OS crash or power loss. Concurrent requests share
	// one commit, so the fsync cost is paid per batch, not per request.
	SyncEveryCommit SyncPolicy = iota
	// SyncNone writes every commit to the file but never fsyncs. Data
	// survives a process kill (it is in the OS page cache) but not an OS
	// crash. Meant for tests and throwaway environments.
	SyncNone
)

// Config configures a Service. Zero fields get the documented defaults.
type Config struct {
	// DataDir holds the bbolt file (sqs.db). Required; created if missing.
	DataDir string
	// Region is used in queue ARNs. Default "us-east-1".
	Region string
	// AccountID is used in queue URLs and ARNs. Default "000000000000".
	AccountID string
	// BaseURL is the scheme://host:port queue URLs start with. Default
	// "http://127.0.0.1:4566". Change it later with Service.SetBaseURL.
	BaseURL string
	// Logger receives one structured line per notable event. Default
	// slog.Default().
	Logger *slog.Logger
	// Sync is the fsync policy; the zero value is SyncEveryCommit.
	Sync SyncPolicy
}

const (
	defaultRegion    = "us-east-1"
	defaultAccountID = "000000000000"
	defaultBaseURL   = "http://127.0.0.1:4566"
)

func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("sqs: Config.DataDir is required")
	}
	if c.Region == "" {
		c.Region = defaultRegion
	}
	if c.AccountID == "" {
		c.AccountID = defaultAccountID
	}
	if c.BaseURL == "" {
		c.BaseURL = defaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
