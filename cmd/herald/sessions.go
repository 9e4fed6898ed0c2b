package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/heraldgw/herald/broker"
	"github.com/heraldgw/herald/federation"
	"github.com/heraldgw/herald/revocation"
	"github.com/heraldgw/herald/web"
)

// announceTimeout bounds telling the other replicas about a revocation.
const announceTimeout = 5 * time.Second

// startRevocations opens the durable set of revoked channels (web and
// broker roles check tokens against it) under the data dir.
func (g *gateway) startRevocations(ctx context.Context) error {
	if !g.cfg.has(RoleWeb) && !g.cfg.has(RoleBroker) {
		return nil
	}
	st, err := revocation.Open(filepath.Join(g.cfg.DataDir, "revocations.jsonl"), g.log.With("part", "revocations"))
	if err != nil {
		return err
	}
	g.revocations = st
	g.run(ctx, "revocations", st.Run)
	return nil
}

// revoker carries out DELETE /v1/sessions/{channel}: the record is made
// durable here, the live connection (if this replica holds it) is closed,
// and the other replicas are told through the upstream broker.
type revoker struct {
	store  *revocation.Store
	broker *broker.Broker         // nil without an embedded broker
	fed    *federation.Federation // nil without replicas
}

var _ web.Revoker = (*revoker)(nil)

func (r *revoker) Revoke(ctx context.Context, app, channel string, until time.Time) error {
	rec := revocation.Record{App: app, Channel: channel, Until: until.UTC()}
	if _, err := r.store.Revoke(rec); err != nil {
		return err
	}
	if r.broker != nil {
		r.broker.Revoke(app, channel)
	}
	if r.fed != nil {
		ctx, cancel := context.WithTimeout(ctx, announceTimeout)
		defer cancel()
		if err := r.fed.Announce(ctx, rec); err != nil {
			return fmt.Errorf("revoked on this replica only: %w", err)
		}
	}
	return nil
}

// applyRevocation applies a revocation another replica announced.
func (g *gateway) applyRevocation(rec revocation.Record) {
	if _, err := g.revocations.Revoke(rec); err != nil {
		g.log.Error("revocation from upstream not stored", "app", rec.App, "channel", rec.Channel, "error", err)
	}
	if g.embedded != nil {
		g.embedded.Revoke(rec.App, rec.Channel)
	}
}
