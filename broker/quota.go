package broker

import (
	"container/list"
	"errors"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldgw/herald/tenant"
)

// quotaRetryAfter is the Retry-After of a publish refused for an app's
// quota: queued messages drain as browsers come back, retained ones as
// they expire or are cleared.
const quotaRetryAfter = 30 * time.Second

// quotaHook keeps what each app holds in the broker within the app's
// limits (tenant.App): its retained messages (count and bytes) and the
// QoS 1 messages kept for its persistent sessions (count and bytes),
// whether waiting for an offline client or for its acknowledgement.
//
// It counts through mochi's hooks (retained set, cleared and expired;
// QoS 1 messages stored, acknowledged, dropped; sessions ended) and checks
// each publish before it is delivered: a client's in OnPublish (it runs
// after the ACL hook and before the durable hook delivers the message),
// the gateway's own in Publish. A message is an app's by its topic,
// apps/{app}/…; a session by its username. Checks and deliveries are not
// one step, so publishes arriving at the same instant can overshoot a cap
// by what they add, never more.
type quotaHook struct {
	mqtt.HookBase
	b      *Broker
	refuse func(cl *mqtt.Client, pk packets.Packet) error

	mu       sync.Mutex
	apps     map[string]*appUsage
	sessions map[string]*sessionQueue // persistent sessions by client id

	refused   *prometheus.CounterVec
	reclaimed *prometheus.CounterVec
}

var _ mqtt.Hook = (*quotaHook)(nil)

// appUsage is what one app holds.
type appUsage struct {
	retained      map[string]*list.Element // topic → its entry in order
	order         *list.List               // retainedEntry, oldest first
	retainedBytes int64
	queued        int
	queuedBytes   int64
}

type retainedEntry struct {
	topic string
	size  int64
}

// sessionQueue is the stored QoS 1 messages of one persistent session.
type sessionQueue struct {
	app   string
	sizes map[uint16]int64
}

func newQuotaHook(b *Broker, refuse func(*mqtt.Client, packets.Packet) error) *quotaHook {
	return &quotaHook{b: b, refuse: refuse, apps: map[string]*appUsage{}, sessions: map[string]*sessionQueue{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_broker_quota_refused_total",
			Help: "Publishes refused because their app was at a limit, by app and limit (maxRetained, maxRetainedBytes, maxQueued, maxQueuedBytes).",
		}, []string{"app", "limit"}),
		reclaimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_broker_retained_reclaimed_total",
			Help: "Retained messages removed by the broker, by app and reason (expired; evicted: the oldest of an app at its cap, to make room for a final job event).",
		}, []string{"app", "reason"}),
	}
}

func (q *quotaHook) ID() string { return "herald-quota" }

func (q *quotaHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnRetainMessage, mqtt.OnRetainedExpired, mqtt.OnQosPublish, mqtt.OnQosComplete,
		mqtt.OnQosDropped, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	}
	return false
}

// appOf is the app a topic belongs to ("" for none: the gateway's own
// herald/… topics).
func appOf(name string) string {
	rest, ok := strings.CutPrefix(name, "apps/")
	if !ok {
		return ""
	}
	app, _, _ := strings.Cut(rest, "/")
	return app
}

func messageSize(pk packets.Packet) int64 { return int64(len(pk.TopicName) + len(pk.Payload)) }

func (q *quotaHook) usage(app string) *appUsage {
	u := q.apps[app]
	if u == nil {
		u = &appUsage{retained: map[string]*list.Element{}, order: list.New()}
		q.apps[app] = u
	}
	return u
}

// limits are app's caps (negative: none); an app the registry does not
// know has the defaults.
func (q *quotaHook) limits(app string) (retained int, retainedBytes int64, queued int, queuedBytes int64) {
	a, err := q.b.cfg.Registry.App(app)
	if err != nil {
		return tenant.DefaultMaxRetained, tenant.DefaultMaxRetainedBytes, tenant.DefaultMaxQueued, tenant.DefaultMaxQueuedBytes
	}
	return a.MaxRetained, a.MaxRetainedBytes, a.MaxQueued, a.MaxQueuedBytes
}

// OnPublish refuses a client's publish its app has no room for: MQTT 5
// PUBACK 0x97, a 3.1.1 client is disconnected.
func (q *quotaHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the gateway's own: Publish checked it
	}
	if err := q.admit(pk, false); err != nil {
		q.b.log.Debug("publish refused", "client", cl.ID, "topic", pk.TopicName, "error", err)
		return pk, q.refuse(cl, pk)
	}
	return pk, nil
}

// admit checks that pk's app has room for it, counting a refusal in the
// metrics. makeRoom (the gateway's own final job events, which must be
// able to end a job) reclaims the app's oldest retained messages instead
// of refusing, and skips the queued-messages cap: those events are bounded
// by the app's jobs in flight.
func (q *quotaHook) admit(pk packets.Packet, makeRoom bool) error {
	app := appOf(pk.TopicName)
	if app == "" {
		return nil
	}
	maxRet, maxRetBytes, maxQ, maxQBytes := q.limits(app)
	size := messageSize(pk)
	var evict []string
	q.mu.Lock()
	u := q.usage(app)
	limit, max := "", int64(0)
	if pk.FixedHeader.Retain && len(pk.Payload) > 0 {
		count, bytes := u.retainedAfter(pk.TopicName, size)
		for makeRoom && (over(count, maxRet) || over64(bytes, maxRetBytes)) {
			e := u.order.Front()
			for e != nil && e.Value.(retainedEntry).topic == pk.TopicName {
				e = e.Next()
			}
			if e == nil {
				break
			}
			old := e.Value.(retainedEntry)
			u.removeRetained(old.topic)
			evict = append(evict, old.topic)
			count, bytes = u.retainedAfter(pk.TopicName, size)
		}
		switch {
		case over(count, maxRet):
			limit, max = "maxRetained", int64(maxRet)
		case over64(bytes, maxRetBytes):
			limit, max = "maxRetainedBytes", maxRetBytes
		}
	}
	if limit == "" && pk.FixedHeader.Qos > 0 && !makeRoom {
		switch {
		case maxQ >= 0 && u.queued >= maxQ:
			limit, max = "maxQueued", int64(maxQ)
		case maxQBytes >= 0 && u.queuedBytes+size > maxQBytes:
			limit, max = "maxQueuedBytes", maxQBytes
		}
	}
	q.mu.Unlock()
	for _, name := range evict {
		q.evict(app, name)
	}
	if limit != "" {
		q.refused.WithLabelValues(app, limit).Inc()
		return &tenant.QuotaError{App: app, Limit: limit, Max: max, Retry: quotaRetryAfter}
	}
	return nil
}

func over(n, limit int) bool     { return limit >= 0 && n > limit }
func over64(n, limit int64) bool { return limit >= 0 && n > limit }

// retainedAfter is the app's retained count and bytes once name holds a
// message of size.
func (u *appUsage) retainedAfter(name string, size int64) (int, int64) {
	if e, ok := u.retained[name]; ok {
		return len(u.retained), u.retainedBytes - e.Value.(retainedEntry).size + size
	}
	return len(u.retained) + 1, u.retainedBytes + size
}

func (u *appUsage) setRetained(name string, size int64) {
	u.removeRetained(name)
	u.retained[name] = u.order.PushBack(retainedEntry{topic: name, size: size})
	u.retainedBytes += size
}

func (u *appUsage) removeRetained(name string) bool {
	e, ok := u.retained[name]
	if !ok {
		return false
	}
	u.retainedBytes -= e.Value.(retainedEntry).size
	u.order.Remove(e)
	delete(u.retained, name)
	return true
}

// evict clears a retained message the way an expiry does: out of mochi's
// index and out of storage, without a delivery to subscribers (an empty
// retained publish would reach them).
func (q *quotaHook) evict(app, name string) {
	q.b.srv.Topics.RetainMessage(packets.Packet{TopicName: name})
	q.b.store.OnRetainedExpired(name)
	q.reclaimed.WithLabelValues(app, "evicted").Inc()
}

// OnRetainMessage counts a retained message set (r 1) or cleared (r -1).
func (q *quotaHook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, r int64) {
	app := appOf(pk.TopicName)
	if app == "" {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if r == 1 {
		q.usage(app).setRetained(pk.TopicName, messageSize(pk))
	} else {
		q.usage(app).removeRetained(pk.TopicName)
	}
}

// OnRetainedExpired uncounts an expired retained message.
func (q *quotaHook) OnRetainedExpired(name string) {
	app := appOf(name)
	if app == "" {
		return
	}
	q.mu.Lock()
	removed := q.usage(app).removeRetained(name)
	q.mu.Unlock()
	if removed {
		q.reclaimed.WithLabelValues(app, "expired").Inc()
	}
}

// OnQosPublish counts a QoS 1 message kept for a persistent session (a
// resend of one already counted changes nothing).
func (q *quotaHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || !persistent(cl) {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addQueued(cl.ID, string(cl.Properties.Username), pk.PacketID, messageSize(pk))
}

func (q *quotaHook) addQueued(client, app string, id uint16, size int64) {
	s := q.sessions[client]
	if s == nil {
		s = &sessionQueue{app: app, sizes: map[uint16]int64{}}
		q.sessions[client] = s
	}
	u := q.usage(s.app)
	if old, ok := s.sizes[id]; ok {
		u.queuedBytes -= old
	} else {
		u.queued++
	}
	s.sizes[id] = size
	u.queuedBytes += size
}

// OnQosComplete uncounts an acknowledged message.
func (q *quotaHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.sessions[cl.ID]
	if s == nil {
		return
	}
	if size, ok := s.sizes[pk.PacketID]; ok {
		u := q.usage(s.app)
		u.queued--
		u.queuedBytes -= size
		delete(s.sizes, pk.PacketID)
	}
}

// OnQosDropped uncounts an expired or discarded message; what a returning
// client takes over stays counted (see store.OnQosDropped).
func (q *quotaHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if !cl.IsTakenOver() {
		q.OnQosComplete(cl, pk)
	}
}

// OnDisconnect forgets a session that ends with its connection.
func (q *quotaHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		q.forget(cl.ID)
	}
}

// OnClientExpired forgets a session nobody came back for.
func (q *quotaHook) OnClientExpired(cl *mqtt.Client) { q.forget(cl.ID) }

func (q *quotaHook) forget(client string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.sessions[client]
	if s == nil {
		return
	}
	u := q.usage(s.app)
	for _, size := range s.sizes {
		u.queued--
		u.queuedBytes -= size
	}
	delete(q.sessions, client)
}

// load counts what the broker restored from storage.
func (q *quotaHook) load(srv *mqtt.Server) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for name, pk := range srv.Topics.Retained.GetAll() {
		if app := appOf(name); app != "" && len(pk.Payload) > 0 {
			q.usage(app).setRetained(name, messageSize(pk))
		}
	}
	for _, cl := range srv.Clients.GetAll() {
		if cl.Net.Inline || !persistent(cl) {
			continue
		}
		for _, pk := range cl.State.Inflight.GetAll(false) {
			if pk.FixedHeader.Type == packets.Publish {
				q.addQueued(cl.ID, string(cl.Properties.Username), pk.PacketID, messageSize(pk))
			}
		}
	}
}

var (
	descRetained      = prometheus.NewDesc("herald_broker_app_retained_messages", "Retained messages held, by app.", []string{"app"}, nil)
	descRetainedBytes = prometheus.NewDesc("herald_broker_app_retained_bytes", "Bytes (topic and payload) of the retained messages held, by app.", []string{"app"}, nil)
	descQueued        = prometheus.NewDesc("herald_broker_app_queued_messages", "QoS 1 messages kept for persistent sessions, by app.", []string{"app"}, nil)
	descQueuedBytes   = prometheus.NewDesc("herald_broker_app_queued_bytes", "Bytes of the QoS 1 messages kept for persistent sessions, by app.", []string{"app"}, nil)
)

// Describe and Collect report each app's usage.
func (q *quotaHook) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRetained, descRetainedBytes, descQueued, descQueuedBytes} {
		ch <- d
	}
}

func (q *quotaHook) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for app, u := range q.apps {
		ch <- prometheus.MustNewConstMetric(descRetained, prometheus.GaugeValue, float64(len(u.retained)), app)
		ch <- prometheus.MustNewConstMetric(descRetainedBytes, prometheus.GaugeValue, float64(u.retainedBytes), app)
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(u.queued), app)
		ch <- prometheus.MustNewConstMetric(descQueuedBytes, prometheus.GaugeValue, float64(u.queuedBytes), app)
	}
}

func (q *quotaHook) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{q, q.refused, q.reclaimed} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
