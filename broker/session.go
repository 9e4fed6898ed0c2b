package broker

import (
	"errors"
	"fmt"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/heraldgw/herald/tenant"
)

// AuthMethod is the MQTT 5 authentication method of a browser session
// token. A browser that sends it in CONNECT (the token stays the password)
// may later re-authenticate on the open connection: AUTH with reason 0x19
// (re-authenticate), this method and the refreshed token as authentication
// data. The server answers AUTH 0x00 and the connection lives until the new
// token expires; a token that does not verify ends the connection with
// DISCONNECT 0x87.
const AuthMethod = "herald-token"

// writeBudget bounds how long telling a client why it is disconnected may
// take; a peer that does not read is cut.
const writeBudget = 2 * time.Second

// A browser connection lives as long as its token: conn.expiresAt is the
// token's expiry, and the broker's expiries heap lets Run end each
// connection then. Re-authentication moves it.

// armExpiry schedules the end of cl's connection at its token's expiry. It
// runs once the session is established, so a CONNECT that fails later
// leaves nothing behind; serve removes the connection when it ends.
func (b *Broker) armExpiry(cl *mqtt.Client, c *conn) {
	at := c.expiresAt.Load()
	if at == 0 {
		return
	}
	c.client = cl
	b.expiries.set(c, at)
}

// expireDue ends the connections whose token has expired by now.
func (b *Broker) expireDue(now time.Time) {
	for _, c := range b.expiries.due(now) {
		b.metrics.sessionsEnded.WithLabelValues("token_expired").Inc()
		b.endSession(c.client, packets.ErrMaxConnectTime)
	}
}

// endSession disconnects cl with code without blocking the caller: MQTT 5
// clients get DISCONNECT with the reason first, 3.1.1 clients (which have
// no server DISCONNECT) a closed connection. The persistent session and
// its queued messages are kept, as for any disconnect.
func (b *Broker) endSession(cl *mqtt.Client, code packets.Code) {
	b.background(func() { b.disconnect(cl, code) })
}

// disconnect tells a live client why (MQTT 5) and closes it.
func (b *Broker) disconnect(cl *mqtt.Client, code packets.Code) {
	if cl.Closed() {
		return
	}
	_ = cl.Net.Conn.SetWriteDeadline(time.Now().Add(writeBudget))
	if cl.Properties.ProtocolVersion == 5 {
		_ = b.srv.DisconnectClient(cl, code)
	}
	cl.Stop(code)
}

// Revoke ends app's channel's session on this broker, if it holds one: a
// live connection gets DISCONNECT 0x98 (administrative action), then the
// session is deleted with its subscriptions and queued messages, in
// memory and on disk. No token can resume it (the caller has updated the
// registry's revocations first), so keeping it would only hold the app's
// queue quota and storage until it expired. Revoke reports whether a live
// connection was ended.
func (b *Broker) Revoke(app, channel string) bool {
	cl, ok := b.srv.Clients.Get(channel)
	if !ok || cl.Net.Inline || isService(cl) || string(cl.Properties.Username) != app {
		return false
	}
	live := !cl.Closed()
	if live {
		b.metrics.sessionsEnded.WithLabelValues("revoked").Inc()
	}
	c, _ := cl.Net.Conn.(*conn)
	b.background(func() {
		b.disconnect(cl, packets.ErrAdministrativeAction)
		if c != nil {
			// mochi stores a persistent session as its connection ends;
			// delete it only after that.
			<-b.served(c)
		}
		b.dropSession(cl, "revoked")
	})
	return live
}

// dropSession deletes a browser's session the way mochi expires one that
// nobody came back for: the hooks that keep state about it (storage,
// quotas) forget it, then mochi does. A session that has ended or been
// replaced meanwhile is left alone.
func (b *Broker) dropSession(cl *mqtt.Client, reason string) {
	if cur, ok := b.srv.Clients.Get(cl.ID); !ok || cur != cl {
		return
	}
	queued := cl.State.Inflight.Len()
	b.store.OnClientExpired(cl)
	b.quota.OnClientExpired(cl)
	b.srv.Clients.Delete(cl.ID)
	b.log.Info("session deleted", "app", string(cl.Properties.Username), "channel", cl.ID,
		"reason", reason, "queued", queued)
}

// OnSessionEstablished arms the token expiry of a browser connection.
func (h *authHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if c, ok := cl.Net.Conn.(*conn); ok {
		h.b.armExpiry(cl, c)
	}
}

// OnAuthPacket re-authenticates a browser on its open connection (MQTT 5
// AUTH, see AuthMethod). Anything else that arrives as AUTH is a protocol
// error: no other exchange is offered.
func (h *authHook) OnAuthPacket(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	c, _ := cl.Net.Conn.(*conn)
	method := cl.Properties.Props.AuthenticationMethod
	if c == nil || isService(cl) || method != AuthMethod || pk.Properties.AuthenticationMethod != method ||
		pk.ReasonCode != packets.CodeReAuthenticate.Code {
		h.b.metrics.reauth.WithLabelValues("protocol_error").Inc()
		return pk, packets.ErrProtocolViolation
	}
	app := string(cl.Properties.Username)
	claims, err := h.b.cfg.Registry.Verify(app, string(pk.Properties.AuthenticationData), time.Now())
	if err == nil && claims.Channel != cl.ID {
		err = fmt.Errorf("token for channel %s presented on %s: %w", claims.Channel, cl.ID, tenant.ErrBadToken)
	}
	if err != nil {
		label := "bad_token"
		switch {
		case errors.Is(err, tenant.ErrExpired):
			label = "expired_token"
		case errors.Is(err, tenant.ErrRevoked):
			label = "revoked"
		}
		h.b.metrics.reauth.WithLabelValues(label).Inc()
		h.b.log.Info("mqtt re-authentication refused", "client", cl.ID, "app", app, "reason", label, "error", errString(err))
		return pk, packets.ErrNotAuthorized // mochi sends DISCONNECT 0x87 and closes
	}
	h.b.expiries.set(c, claims.ExpiresAt.UnixNano())
	h.b.metrics.reauth.WithLabelValues("ok").Inc()
	if err := cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Auth},
		ReasonCode:  packets.CodeSuccess.Code,
		Properties:  packets.Properties{AuthenticationMethod: method},
	}); err != nil {
		return pk, fmt.Errorf("re-authentication of %s: %w", cl.ID, err)
	}
	return pk, nil
}
