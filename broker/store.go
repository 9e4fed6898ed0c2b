package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
)

// store keeps persistent sessions (client, subscriptions, QoS 1 messages
// in flight or waiting for an offline client) and retained messages in one
// bbolt file.
//
// Why bbolt: a single file with ACID transactions, pure Go, no background
// compaction and a tiny resident footprint (it is mmapped; pages are only
// touched when read). Pebble and Badger are LSM trees built for write
// volumes this broker does not have; they bring memtables of tens of MiB,
// many files and compaction goroutines. The data here is small (sessions
// and their few pending messages) and mostly overwritten or deleted.
//
// Why not mochi's hooks/storage/bolt: it stores inflight messages without
// their packet id, so after a restart they all collide on id 0, and it drops
// message expiry; it also writes every session, clean or not, with one
// fsync per event. This hook stores only sessions that outlive their
// connection and keeps packet ids and expiry. Changes are queued and
// committed in batches by one goroutine (group commit, see commit.go); a
// publish that must be durable waits for the commit that holds its
// changes (sync), everything else does not wait.
//
// The hook also keeps the order of each session's pending messages (see
// sessionOrder); without a file (memory only) it does only that.
type store struct {
	mqtt.HookBase
	db    *bbolt.DB // nil: memory only
	log   *slog.Logger
	srv   *mqtt.Server
	order *sessionOrder

	mu      sync.RWMutex // guards closed against ops sends
	closed  bool
	ops     chan storeOp
	done    chan struct{}
	failure atomic.Pointer[storageError] // the last commit's error; nil when it succeeded
	metrics *metrics
	// writeBehind makes sync return at once (only the benchmark sets it,
	// to compare with how Publish behaved before it waited for the disk).
	writeBehind bool
	// compact says when the file is compacted (see compact.go); started
	// is set once the broker restored its state (reads are over).
	compact compaction
	started atomic.Bool
	// maxSessionExpiry is the broker's SessionExpiry; gone are the
	// sessions StoredClients found expired (startup only).
	maxSessionExpiry time.Duration
	gone             map[string]bool
	fileBytes        prometheus.Gauge
	compactions      prometheus.Counter
}

var _ mqtt.Hook = (*store)(nil)

var (
	bucketClients  = []byte("clients")
	bucketSubs     = []byte("subscriptions")
	bucketInflight = []byte("inflight")
	bucketRetained = []byte("retained")
)

// storedMessage is a retained or inflight message with what mochi's own
// storage types leave out (packet id, expiry, protocol version).
type storedMessage struct {
	Client          string                    `json:"client,omitempty"`
	PacketID        uint16                    `json:"packetId,omitempty"`
	Topic           string                    `json:"topic"`
	Payload         []byte                    `json:"payload"`
	Header          packets.FixedHeader       `json:"header"`
	Origin          string                    `json:"origin,omitempty"`
	Created         int64                     `json:"created"`
	Seq             uint64                    `json:"seq,omitempty"` // order within the session
	Expiry          int64                     `json:"expiry,omitempty"`
	ProtocolVersion byte                      `json:"protocolVersion"`
	Properties      storage.MessageProperties `json:"properties"`
}

func openStore(path string, log *slog.Logger, m *metrics, c compaction) (*store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("broker storage dir for %q: %w", path, err)
	}
	db, err := openDB(path)
	if err != nil {
		return nil, fmt.Errorf("open broker storage %q: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketClients, bucketSubs, bucketInflight, bucketRetained, bucketEnded} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init broker storage %q: %w", path, err)
	}
	s := newMemoryStore(log, m)
	s.db, s.compact = db, c
	// What the last run freed (a crash after a burst of deletions) is
	// given back before anything is read.
	s.started.Store(true)
	s.maybeCompact()
	s.started.Store(false)
	go s.writer()
	return s, nil
}

// newMemoryStore returns the hook without a file: sessions live as long as
// the process.
func newMemoryStore(log *slog.Logger, m *metrics) *store {
	s := &store{log: log, order: newSessionOrder(), metrics: m,
		ops: make(chan storeOp, 4096), done: make(chan struct{}), compact: compaction{minFree: -1}}
	s.compactionMetrics()
	return s
}

func (s *store) ID() string { return "herald-store" }

func (s *store) Provides(b byte) bool {
	// Asked on every hook dispatch: a switch, not a slice search.
	switch b {
	case mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed,
		mqtt.OnUnsubscribed, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnPublishDropped, mqtt.OnRetainMessage,
		mqtt.OnRetainedExpired, mqtt.OnClientExpired, mqtt.StoredClients, mqtt.StoredSubscriptions:
		return true
	}
	return false
}

func (s *store) put(bucket, key []byte, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		s.log.Error("broker storage encode", "bucket", string(bucket), "error", err)
		return
	}
	s.enqueue(storeOp{bucket: bucket, key: key, val: data})
}

func (s *store) del(bucket, key []byte) { s.enqueue(storeOp{bucket: bucket, key: key}) }

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func subKey(client, filter string) []byte { return []byte(client + "\x00" + filter) }
func clientPrefix(client string) []byte   { return []byte(client + "\x00") }
func inflightKey(client string, id uint16) []byte {
	return binary.BigEndian.AppendUint16(clientPrefix(client), id)
}

func (s *store) putClient(cl *mqtt.Client) {
	p := cl.Properties.Props
	s.put(bucketClients, []byte(cl.ID), storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     p.SessionExpiryInterval,
			SessionExpiryIntervalFlag: p.SessionExpiryIntervalFlag,
			ReceiveMaximum:            p.ReceiveMaximum,
			TopicAliasMaximum:         p.TopicAliasMaximum,
			MaximumPacketSize:         p.MaximumPacketSize,
			RequestProblemInfo:        p.RequestProblemInfo,
			RequestProblemInfoFlag:    p.RequestProblemInfoFlag,
			RequestResponseInfo:       p.RequestResponseInfo,
		},
	})
}

func (s *store) deleteClient(id string) {
	s.order.forget(id)
	s.del(bucketClients, []byte(id))
	s.del(bucketEnded, []byte(id))
	s.enqueue(storeOp{bucket: bucketSubs, key: clientPrefix(id), prefix: true})
	s.enqueue(storeOp{bucket: bucketInflight, key: clientPrefix(id), prefix: true})
}

// OnSessionEstablish runs before mochi hands a stored session to the
// connecting client and resends what it holds: the resend must come out in
// arrival order.
func (s *store) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if !pk.Connect.Clean {
		s.order.rankForResend(s.srv, cl)
	}
}

// OnSessionEstablished stores a persistent session (the resend is over).
func (s *store) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	s.order.restoreCreated(cl)
	if persistent(cl) {
		s.putClient(cl)
		s.del(bucketEnded, []byte(cl.ID))
	}
}

// OnDisconnect forgets a session that ends with its connection, or keeps the
// session's latest properties (a v5 DISCONNECT may change its expiry).
func (s *store) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	switch {
	case expire && cl.StopCause() == packets.ErrSessionTakenOver:
		// The new connection owns the stored session now.
	case expire:
		s.deleteClient(cl.ID)
	case persistent(cl) && cl.Net.Conn != nil:
		s.putClient(cl)
		s.markEnded(cl.ID, time.Now())
	}
}

// OnClientExpired forgets a session nobody came back for.
func (s *store) OnClientExpired(cl *mqtt.Client) { s.deleteClient(cl.ID) }

// OnSubscribed stores the granted filters of a persistent session.
func (s *store) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !persistent(cl) {
		return
	}
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		s.put(bucketSubs, subKey(cl.ID, f.Filter), storage.Subscription{
			T: storage.SubscriptionKey, Client: cl.ID, Filter: f.Filter, Qos: codes[i],
			Identifier: f.Identifier, RetainHandling: f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished, NoLocal: f.NoLocal,
		})
	}
}

// OnUnsubscribed forgets filters of a persistent session.
func (s *store) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		return
	}
	for _, f := range pk.Filters {
		s.del(bucketSubs, subKey(cl.ID, f.Filter))
	}
}

// OnQosPublish stores a QoS 1 message sent (or waiting) for a persistent
// session until the client acknowledges it.
// mochi reports a resend the same way; it is stored already.
func (s *store) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || !persistent(cl) {
		return
	}
	seq, isNew := s.order.add(cl.ID, pk.PacketID)
	if !isNew {
		return
	}
	m := messageOf(cl.ID, pk)
	m.Seq = seq
	s.put(bucketInflight, inflightKey(cl.ID, pk.PacketID), m)
}

// OnQosComplete forgets an acknowledged message.
func (s *store) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if persistent(cl) {
		s.order.remove(cl.ID, pk.PacketID)
		s.del(bucketInflight, inflightKey(cl.ID, pk.PacketID))
	}
}

// OnQosDropped forgets an expired or discarded message. When a returning
// client takes a session over, mochi clears the old client's copy of the
// messages it has just handed over: those stay.
func (s *store) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if !cl.IsTakenOver() {
		s.OnQosComplete(cl, pk)
	}
}

// OnPublishDropped runs when cl's write queue was full: mochi takes the
// message back out of cl's session, without telling the hooks which one.
// A persistent session keeps it for cl's return (cl is disconnected).
func (s *store) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Qos > 0 && persistent(cl) {
		s.order.keepDropped(cl, pk)
	}
}

// OnRetainMessage stores (or, for an empty payload, deletes) a retained
// message.
func (s *store) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, r int64) {
	if r == -1 {
		s.del(bucketRetained, []byte(pk.TopicName))
		return
	}
	s.put(bucketRetained, []byte(pk.TopicName), messageOf("", pk))
}

// OnRetainedExpired forgets an expired retained message.
func (s *store) OnRetainedExpired(name string) { s.del(bucketRetained, []byte(name)) }

func messageOf(client string, pk packets.Packet) storedMessage {
	p := pk.Properties
	return storedMessage{
		Client: client, PacketID: pk.PacketID, Topic: pk.TopicName, Payload: pk.Payload,
		Header: pk.FixedHeader, Origin: pk.Origin, Created: pk.Created, Expiry: pk.Expiry,
		ProtocolVersion: pk.ProtocolVersion,
		Properties: storage.MessageProperties{
			PayloadFormat: p.PayloadFormat, PayloadFormatFlag: p.PayloadFormatFlag,
			MessageExpiryInterval: p.MessageExpiryInterval, ContentType: p.ContentType,
			ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData, User: p.User,
		},
	}
}

func (m storedMessage) packet() packets.Packet {
	p := m.Properties
	return packets.Packet{
		FixedHeader: m.Header, PacketID: m.PacketID, TopicName: m.Topic, Payload: m.Payload,
		Origin: m.Origin, Created: m.Created, Expiry: m.Expiry, ProtocolVersion: m.ProtocolVersion,
		Properties: packets.Properties{
			PayloadFormat: p.PayloadFormat, PayloadFormatFlag: p.PayloadFormatFlag,
			MessageExpiryInterval: p.MessageExpiryInterval, ContentType: p.ContentType,
			ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData, User: p.User,
		},
	}
}

// StoredClients returns the persistent sessions for mochi to restore;
// those that expired while the broker was down are deleted instead.
func (s *store) StoredClients() ([]storage.Client, error) {
	ended, err := s.endedTimes()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out, gone []storage.Client
	err = s.scan(bucketClients, func(_, v []byte) error {
		var c storage.Client
		if err := json.Unmarshal(v, &c); err != nil {
			return err
		}
		if s.expired(c, ended, now) {
			gone = append(gone, c)
		} else {
			out = append(out, c)
		}
		return nil
	})
	// Deleted after the scan: a write queued from inside a read
	// transaction could wait on it.
	s.gone = map[string]bool{}
	for _, c := range gone {
		s.gone[c.ID] = true
		s.deleteClient(c.ID)
	}
	return out, err
}

// StoredSubscriptions returns the stored filters for mochi to restore.
func (s *store) StoredSubscriptions() ([]storage.Subscription, error) {
	var out []storage.Subscription
	err := s.scan(bucketSubs, func(_, v []byte) error {
		var sub storage.Subscription
		if err := json.Unmarshal(v, &sub); err != nil {
			return err
		}
		if !s.gone[sub.Client] { // mochi would index a gone client's filters
			out = append(out, sub)
		}
		return nil
	})
	return out, err
}

// restore loads retained messages and pending QoS 1 messages into srv after
// mochi has restored the sessions. It is done here rather than through
// mochi's loaders, which lose packet ids and expiry.
func (s *store) restore(srv *mqtt.Server) error {
	now := time.Now().Unix()
	// Stale keys are deleted after the scans: a write queued from inside a
	// read transaction could wait on it.
	var staleRetained, staleInflight [][]byte
	defer func() {
		for _, k := range staleRetained {
			s.del(bucketRetained, k)
		}
		for _, k := range staleInflight {
			s.del(bucketInflight, k)
		}
	}()
	err := s.scan(bucketRetained, func(_, v []byte) error {
		var m storedMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if m.Expiry > 0 && m.Expiry < now {
			staleRetained = append(staleRetained, []byte(m.Topic))
			return nil
		}
		srv.Topics.RetainMessage(m.packet())
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore retained messages: %w", err)
	}
	err = s.scan(bucketInflight, func(k, v []byte) error {
		var m storedMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		cl, ok := srv.Clients.Get(m.Client)
		if !ok || (m.Expiry > 0 && m.Expiry < now) {
			staleInflight = append(staleInflight, bytes.Clone(k))
			return nil
		}
		cl.State.Inflight.Set(m.packet())
		s.order.load(m.Client, m.PacketID, m.Seq)
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore pending messages: %w", err)
	}
	return nil
}

func (s *store) scan(bucket []byte, visit func(k, v []byte) error) error {
	if s.db == nil {
		return nil
	}
	return s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(visit)
	})
}
