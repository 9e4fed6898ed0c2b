package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

// servicePrefix starts the client id of a service (docs/design.md).
const servicePrefix = "svc-"

// MQTT 3.1.1 CONNACK return codes (mochi maps only some v5 codes itself).
var (
	v3IdentifierRejected = packets.Code{Code: 0x02}
	v3ServerUnavailable  = packets.Code{Code: 0x03}
	v3BadCredentials     = packets.Code{Code: 0x04}
	v3NotAuthorized      = packets.Code{Code: 0x05}
)

// refusal is why a CONNECT was refused: the metric label, the MQTT 5 reason
// and the 3.1.1 return code.
type refusal struct {
	label string
	v5    packets.Code
	v3    packets.Code
	auth  bool // counts as an authentication failure
}

var (
	refuseUnknownApp = refusal{"unknown_app", packets.ErrBadUsernameOrPassword, v3BadCredentials, true}
	refuseBadToken   = refusal{"bad_token", packets.ErrBadUsernameOrPassword, v3BadCredentials, true}
	refuseExpired    = refusal{"expired_token", packets.ErrBadUsernameOrPassword, v3BadCredentials, true}
	refuseRevoked    = refusal{"revoked", packets.ErrBanned, v3NotAuthorized, true}
	refuseAuthMethod = refusal{"auth_method", packets.ErrBadAuthenticationMethod, v3NotAuthorized, false}
	refuseBadKey     = refusal{"bad_api_key", packets.ErrBadUsernameOrPassword, v3BadCredentials, true}
	refuseClientID   = refusal{"client_id_mismatch", packets.ErrClientIdentifierNotValid, v3IdentifierRejected, false}
	refuseOrigin     = refusal{"origin", packets.ErrNotAuthorized, v3NotAuthorized, false}
	refuseWill       = refusal{"will", packets.ErrNotAuthorized, v3NotAuthorized, false}
	refuseBusy       = refusal{"server_busy", packets.ErrServerBusy, v3ServerUnavailable, false}
)

// authHook is the broker's mochi hook: authentication at CONNECT, the
// topic ACL, keep-alive bounds, flow-control limits, metrics and the
// per-connection log lines.
//
// Identity is carried by mochi's own client fields, so no per-client state
// is added: the username is the app id; a browser's client id is its
// channel; a service's client id is rewritten at CONNECT to "{app}/{id}"
// (a '/' never occurs in a channel id). That keeps services of different
// apps — and browsers — in separate session namespaces: without it a
// service of app B choosing app A's client id would take over A's session
// and its queued messages.
type authHook struct {
	mqtt.HookBase
	b *Broker
}

var _ mqtt.Hook = (*authHook)(nil)

func (h *authHook) ID() string { return "herald-auth" }

func (h *authHook) Provides(b byte) bool {
	// mochi asks this on every hook dispatch, several times per delivery.
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSubscribe,
		mqtt.OnPublish, mqtt.OnSubscribed, mqtt.OnPublishDropped,
		mqtt.OnDisconnect, mqtt.OnPacketEncode, mqtt.OnPacketRead,
		mqtt.OnSessionEstablished, mqtt.OnAuthPacket:
		return true
	}
	return false
}

func isService(cl *mqtt.Client) bool { return strings.IndexByte(cl.ID, '/') >= 0 }

// OnConnect authenticates the client. A refusal is answered here with the
// precise CONNACK reason (mochi's authenticate step only knows 0x86), and
// the returned error makes mochi close the connection.
func (h *authHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	b := h.b
	c, _ := cl.Net.Conn.(*conn)
	appID := string(pk.Connect.Username)
	id := pk.Connect.ClientIdentifier
	svc := strings.HasPrefix(id, servicePrefix)

	if b.Clients() >= b.cfg.MaxConnections {
		return h.refuse(cl, c, refuseBusy, svc, nil)
	}
	if m := pk.Properties.AuthenticationMethod; m != "" && (m != AuthMethod || svc) {
		return h.refuse(cl, c, refuseAuthMethod, svc, fmt.Errorf("authentication method %q not offered", m))
	}
	app, err := b.cfg.Registry.App(appID)
	if err != nil {
		return h.refuse(cl, c, refuseUnknownApp, svc, err)
	}
	pass := string(pk.Connect.Password)
	if svc {
		if err := app.CheckAPIKey(pass); err != nil {
			// A channel id is random base64url and so may itself start
			// with "svc-" (once in 2^24): such a browser still connects
			// with its token.
			claims, terr := b.cfg.Registry.Verify(appID, pass, time.Now())
			if terr != nil || claims.Channel != id {
				return h.refuse(cl, c, refuseBadKey, svc, err)
			}
			svc = false
		}
	} else {
		claims, err := b.cfg.Registry.Verify(appID, pass, time.Now())
		switch {
		case errors.Is(err, tenant.ErrExpired):
			return h.refuse(cl, c, refuseExpired, svc, err)
		case errors.Is(err, tenant.ErrRevoked):
			return h.refuse(cl, c, refuseRevoked, svc, err)
		case err != nil:
			return h.refuse(cl, c, refuseBadToken, svc, err)
		case claims.Channel != id:
			return h.refuse(cl, c, refuseClientID, svc, fmt.Errorf("client id %q is not the token's channel", id))
		}
		if c != nil {
			c.expiresAt.Store(claims.ExpiresAt.UnixNano())
		}
	}
	if c != nil && !app.AllowsOrigin(c.origin) {
		return h.refuse(cl, c, refuseOrigin, svc, fmt.Errorf("app %q does not allow origin %q", app.ID, c.origin))
	}
	// A will is a publish made on the client's behalf later: a browser may
	// publish nothing, a service only inside its app. Refused rather than
	// stripped so the client learns it at once.
	if pk.Connect.WillFlag && (!svc || !topic.ServiceMayPublish(pk.Connect.WillTopic, app.ID)) {
		return h.refuse(cl, c, refuseWill, svc, fmt.Errorf("will to %q not allowed", pk.Connect.WillTopic))
	}
	if svc {
		cl.ID = app.ID + "/" + id
	}
	h.boundKeepAlive(cl, pk)
	if c != nil {
		c.connected.Store(true)
	}
	b.metrics.connects.Inc()
	b.log.Debug("mqtt connect", "client", cl.ID, "app", app.ID, "remote", cl.Net.Remote, "transport", cl.Net.Listener,
		"service", svc, "protocol", pk.ProtocolVersion)
	return nil
}

// boundKeepAlive applies KeepAliveMin/Max (see Config).
func (h *authHook) boundKeepAlive(cl *mqtt.Client, pk packets.Packet) {
	lo := uint16(h.b.cfg.KeepAliveMin / time.Second)
	hi := uint16(h.b.cfg.KeepAliveMax / time.Second)
	switch ka := pk.Connect.Keepalive; {
	case ka == 0 || ka > hi:
		cl.State.Keepalive = hi
		cl.State.ServerKeepalive = true // announced to MQTT 5 clients
	case ka < lo:
		// Not announced: the client may keep pinging at its own rate, the
		// server just tolerates longer silences (throttled browser tabs).
		cl.State.Keepalive = lo
	}
}

func (h *authHook) refuse(cl *mqtt.Client, c *conn, r refusal, svc bool, why error) error {
	code := r.v5
	if cl.Properties.ProtocolVersion < 5 {
		code = r.v3
	}
	if c != nil {
		c.refused.Store(true)
	}
	kind := "browser"
	if svc {
		kind = "service"
	}
	h.b.metrics.connectsRefused.WithLabelValues(r.label).Inc()
	if r.auth {
		h.b.metrics.authFailures.WithLabelValues(kind).Inc()
	}
	remote := ""
	if cl.Net.Conn != nil {
		remote = cl.Net.Conn.RemoteAddr().String()
	}
	h.b.log.Info("mqtt connect refused", "client", cl.ID, "app", string(cl.Properties.Username),
		"kind", kind, "remote", remote, "transport", cl.Net.Listener, "reason", r.label,
		"code", fmt.Sprintf("0x%02x", code.Code), "error", errString(why))
	if err := h.b.srv.SendConnack(cl, code, false, nil); err != nil {
		return fmt.Errorf("refuse connect of %q: %w", cl.ID, err)
	}
	if code.Code < packets.ErrUnspecifiedError.Code {
		// A 3.1.1 return code; mochi wants an error to end the connection.
		return packets.ErrNotAuthorized
	}
	return code
}

// OnConnectAuthenticate accepts: OnConnect already refused everyone else.
func (h *authHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnACLCheck is asked for every client publish (write), every subscription
// filter and every delivery (read). The checks are level by level, never a
// generic filter matcher, so '#', '+', "$SYS/…" and "$share/…" cannot reach
// beyond the allowed subtree.
func (h *authHook) OnACLCheck(cl *mqtt.Client, name string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	ok := allowed(cl, name, write)
	if write && !ok {
		h.b.metrics.publishRefused.Inc()
	}
	return ok
}

func allowed(cl *mqtt.Client, name string, write bool) bool {
	app := string(cl.Properties.Username)
	switch {
	case isService(cl) && write:
		return topic.ServiceMayPublish(name, app)
	case isService(cl):
		return topic.ServiceMaySubscribe(name, app)
	case write:
		return false
	default:
		return topic.BrowserMaySubscribe(name, app, cl.ID)
	}
}

// OnPublish re-checks the final topic name (after any alias resolution) and
// drops the packet if the ACL would not allow it.
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || allowed(cl, pk.TopicName, true) {
		return pk, nil
	}
	return pk, packets.ErrRejectPacket
}

// OnPacketRead answers an MQTT 5 QoS 1 publish whose topic name mochi
// refuses before any hook sees it ("$SYS/…", wildcards): mochi drops such a
// packet silently, and the client would wait for its PUBACK forever.
// mochi then drops it as before, so it is never delivered or counted twice.
func (h *authHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 || cl.Net.Inline ||
		cl.Properties.ProtocolVersion < 5 || mqtt.IsValidFilter(pk.TopicName, true) {
		return pk, nil
	}
	code := packets.ErrNotAuthorized
	if strings.ContainsAny(pk.TopicName, "+#") {
		code = packets.ErrTopicNameInvalid
	}
	h.b.metrics.publishRefused.Inc()
	_ = cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Puback},
		PacketID:    pk.PacketID,
		ReasonCode:  code.Code,
		Properties:  packets.Properties{ReasonString: code.Reason},
	})
	return pk, nil
}

// overLimit replaces a filter beyond MaxSubscriptions: the ACL refuses it
// (it starts with '$'), so the client gets SUBACK 0x87 for that filter.
const overLimit = "$herald/subscription-limit"

// OnSubscribe refuses new filters beyond MaxSubscriptions (browsers) or
// MaxServiceSubscriptions (services), so a client
// cannot grow its session (memory and store) without bound. Filters the
// session already holds are re-subscriptions and always pass.
func (h *authHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	limit := h.b.cfg.MaxSubscriptions
	if isService(cl) {
		limit = h.b.cfg.MaxServiceSubscriptions
	}
	n := cl.State.Subscriptions.Len()
	filters := make(packets.Subscriptions, len(pk.Filters))
	seen := make(map[string]bool, len(pk.Filters))
	for i, sub := range pk.Filters {
		if _, ok := cl.State.Subscriptions.Get(sub.Filter); !ok && !seen[sub.Filter] {
			if n >= limit {
				sub.Filter = overLimit
			} else if allowed(cl, sub.Filter, false) {
				n++
				seen[sub.Filter] = true
			}
		}
		filters[i] = sub
	}
	pk.Filters = filters
	return pk
}

// OnSubscribed counts the filters the ACL refused.
func (h *authHook) OnSubscribed(_ *mqtt.Client, _ packets.Packet, codes []byte) {
	for _, c := range codes {
		if c >= packets.ErrUnspecifiedError.Code {
			h.b.metrics.subscribeRefused.Inc()
		}
	}
}

// OnPublishDropped runs when cl's outbound queue is full: cl is not reading.
// It is disconnected so it stops holding memory and comes back to catch up
// from its session and the retained events.
func (h *authHook) OnPublishDropped(cl *mqtt.Client, _ packets.Packet) {
	h.b.metrics.dropped.WithLabelValues("queue_full").Inc()
	h.b.kick(cl, packets.ErrQuotaExceeded)
}

// OnDisconnect logs one line per disconnect of a client that was connected:
// at DEBUG when the client said goodbye (DISCONNECT), like its connect,
// else at INFO.
func (h *authHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if cl.Net.Conn == nil { // a stored session loaded at start
		return
	}
	reason := disconnectReason(cl, err)
	h.b.metrics.disconnects.WithLabelValues(reason).Inc()
	level := slog.LevelInfo
	if reason == "client" {
		level = slog.LevelDebug
	}
	h.b.log.Log(context.Background(), level, "mqtt disconnect", "client", cl.ID, "app", string(cl.Properties.Username),
		"remote", cl.Net.Remote, "transport", cl.Net.Listener, "reason", reason,
		"error", errString(err), "session_kept", !expire)
}

// disconnectReason gives a small fixed set of labels.
func disconnectReason(cl *mqtt.Client, err error) string {
	cause := cl.StopCause()
	var code packets.Code
	switch {
	case errors.As(cause, &code) && code == packets.CodeDisconnect:
		return "client"
	case errors.As(cause, &code):
		return strings.ReplaceAll(code.Reason, " ", "_")
	case errors.As(err, &code):
		return strings.ReplaceAll(code.Reason, " ", "_")
	case err == nil:
		return "client"
	case errors.Is(err, errMalformedLength):
		return "malformed_packet"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "keepalive_timeout"
	default:
		return "connection_lost"
	}
}

// OnPacketEncode tells MQTT 5 clients the packet size limit in CONNACK,
// which mochi does not announce by itself, and echoes the authentication
// method.
func (h *authHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
		pk.Properties.MaximumPacketSize = uint32(h.b.cfg.MaxPacketSize)
		// An accepted CONNECT that named an authentication method gets it
		// back [MQTT-4.12.0-5].
		pk.Properties.AuthenticationMethod = cl.Properties.Props.AuthenticationMethod
	}
	return pk
}
