package main

import (
	"context"
	"log/slog"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/web"
)

// startProcessor wires the processor role: it returns what the web role
// offers browsers and services (upload grants, job submission). Without the
// processor role a web process still grants uploads (it needs S3 only).
func startProcessor(ctx context.Context, cfg *Config, p *parts, clients *awsClients, pub bridge.Publisher, log *slog.Logger) (web.Uploader, web.JobSubmitter, error) {
	return nil, nil, nil
}
