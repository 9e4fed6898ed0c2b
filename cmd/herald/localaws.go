package main

import (
	"context"
	"errors"
	"flag"
	"io"

	"github.com/heraldgw/herald/localaws"
)

// runLocalAWS serves only the S3 + SQS stand-in, for using it from other
// tools (the aws CLI, SDKs) or for gateway processes that share one.
func runLocalAWS(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("herald localaws", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var origins stringList
	fs.Var(&origins, "cors-origins", "origins the default bucket's CORS rule allows (comma-separated)")
	cfg, err := loadConfigWith(fs, args, getenv, flagLocalawsAddr|flagDataDir|flagLog)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := cfg.logger(stdout)
	if err != nil {
		return err
	}
	srv, err := localaws.New(cfg.localaws(origins, log))
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return errors.Join(listenError(err, cfg.AWS.LocalawsAddr, settingLocalawsCmdAddr), srv.Close())
	}
	log.Info("herald localaws ready", "url", srv.URL(), "bucket", cfg.AWS.Bucket, "queue", cfg.AWS.Queue)
	return srv.Run(ctx)
}
