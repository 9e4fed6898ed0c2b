package broker

import (
	"bytes"
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sessionOrder remembers the order in which QoS 1 messages entered each
// persistent session, so that what a session holds is sent again in that
// order when its client comes back (after a reconnect or a restart).
//
// mochi resends a session's pending messages sorted by the low 16 bits of
// their creation time in whole seconds, with an unstable sort: messages
// queued within one second come out shuffled, and the key wraps every
// 18 hours. The sort cannot be changed from outside, but its keys can:
// just before mochi hands a stored session to the returning connection,
// rankForResend rewrites each pending message's creation time to its rank
// in the true order, and restoreCreated puts the real times back once the
// resend is written. The ranks lie in one 65,536-second block ahead of
// now, so nothing looks expired meanwhile.
//
// Only persistent sessions are tracked: a clean session never resends.
type sessionOrder struct {
	mu      sync.Mutex
	next    uint64
	clients map[string]*pendingOrder
	gate    resumeGate
}

// pendingOrder is what sessionOrder knows about one session.
type pendingOrder struct {
	seq  map[uint16]uint64 // packet id → order of arrival
	last uint16            // packet id of the newest message
	// dropped holds messages mochi took back out of the session when the
	// client's write queue was full; they are put back at its return.
	dropped map[uint16]packets.Packet
	// created holds real creation times, and the ranks standing in for
	// them, while a resend runs.
	created map[uint16][2]int64
}

func newSessionOrder() *sessionOrder {
	return &sessionOrder{clients: make(map[string]*pendingOrder)}
}

func (o *sessionOrder) client(id string) *pendingOrder {
	p := o.clients[id]
	if p == nil {
		p = &pendingOrder{seq: make(map[uint16]uint64)}
		o.clients[id] = p
	}
	return p
}

// add records that packet id entered client's session now. It returns the
// message's order, and false if the message was already known (mochi
// reports resent messages the same way as new ones).
func (o *sessionOrder) add(client string, id uint16) (uint64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.client(client)
	if seq, ok := p.seq[id]; ok {
		return seq, false
	}
	o.next++
	p.seq[id] = o.next
	p.last = id
	return o.next, true
}

// load records a message restored from storage with its stored order.
func (o *sessionOrder) load(client string, id uint16, seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.client(client).seq[id] = seq
	o.next = max(o.next, seq)
}

// remove forgets an acknowledged or discarded message.
func (o *sessionOrder) remove(client string, id uint16) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.clients[client]
	if p == nil {
		return
	}
	delete(p.seq, id)
	delete(p.dropped, id)
	if len(p.seq) == 0 && len(p.created) == 0 {
		delete(o.clients, client)
	}
}

// forget drops everything known about a session that ended.
func (o *sessionOrder) forget(client string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.clients, client)
}

// keepDropped is called when mochi could not queue a message for cl and is
// about to take it out of cl's session. The message is the newest one added
// for cl (mochi adds it and tries to queue it on the same goroutine); it is
// kept so that the session still holds it when cl comes back.
func (o *sessionOrder) keepDropped(cl *mqtt.Client, pk packets.Packet) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.clients[cl.ID]
	if p == nil {
		return
	}
	m, ok := cl.State.Inflight.Get(p.last)
	if !ok || m.TopicName != pk.TopicName || !bytes.Equal(m.Payload, pk.Payload) {
		// Another publish to cl got in between: find the message itself.
		ok = false
		for _, c := range cl.State.Inflight.GetAll(false) {
			if _, known := p.seq[c.PacketID]; known && c.TopicName == pk.TopicName && bytes.Equal(c.Payload, pk.Payload) {
				m, ok = c, true
			}
		}
	}
	if !ok {
		return
	}
	if p.dropped == nil {
		p.dropped = make(map[uint16]packets.Packet)
	}
	p.dropped[m.PacketID] = m
}

// rankForResend prepares the session that cl is about to take over for
// mochi's resend: messages dropped from it are put back, and the creation
// times of everything pending become ranks in arrival order. Publishes to
// the channel wait until restoreCreated.
func (o *sessionOrder) rankForResend(srv *mqtt.Server, cl *mqtt.Client) {
	old, ok := srv.Clients.Get(cl.ID)
	if !ok {
		return
	}
	o.gate.begin(cl.ID)
	in := old.State.Inflight
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.clients[cl.ID]
	if p == nil {
		return
	}
	for id, m := range p.dropped {
		if _, ok := in.Get(id); !ok {
			in.Set(m)
		}
	}
	p.dropped = nil
	all := in.GetAll(false)
	slices.SortFunc(all, func(a, b packets.Packet) int {
		sa, sb := p.seq[a.PacketID], p.seq[b.PacketID]
		if sa != sb {
			return cmp.Compare(sa, sb)
		}
		return cmp.Compare(a.PacketID, b.PacketID)
	})
	now := time.Now().Unix()
	base := (now/65536 + 1) * 65536
	p.created = make(map[uint16][2]int64, len(all))
	for i, m := range all {
		rank := base + int64(i)
		p.created[m.PacketID] = [2]int64{m.Created, rank}
		m.Created = rank
		in.Set(m)
	}
}

// restoreCreated gives the messages of cl's session their real creation
// times back once mochi has resent them.
func (o *sessionOrder) restoreCreated(cl *mqtt.Client) {
	defer o.gate.end(cl.ID)
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.clients[cl.ID]
	if p == nil || p.created == nil {
		return
	}
	for id, c := range p.created {
		if m, ok := cl.State.Inflight.Get(id); ok && m.Created == c[1] {
			m.Created = c[0]
			cl.State.Inflight.Set(m)
		}
	}
	p.created = nil
	if len(p.seq) == 0 {
		delete(o.clients, cl.ID)
	}
}

// resumeTimeout bounds how long publishes to a channel wait for its
// session's resend (a resend that fails midway never says it is done).
const resumeTimeout = 2 * time.Second

// resumeGate holds publishes to a channel back while its session is being
// handed to the returning client and its pending messages resent: between
// those two points mochi may deliver a new message ahead of older ones
// (the new connection is live before the resend is written) or into the
// old client object it is about to discard.
//
// A publish delivers inside the gate (enter … leave), and begin waits for
// the deliveries already inside to leave before it holds the channel: a
// publish that had looked at the gate just before the resume began would
// otherwise deliver in the middle of it. The gate is one read-write lock
// per shard of channels, so publishes share it and a resume stops only
// the deliveries of its own shard, for as long as those in flight take.
type resumeGate struct {
	shards [gateShards]sync.RWMutex
	active atomic.Int32 // entries in resuming: the fast path reads only this
	mu     sync.Mutex
	// resuming maps a client id (a browser's channel) to a channel closed
	// when its resend is written, and when the hold expires.
	resuming map[string]resumeHold
}

// gateShards is the number of locks channels are spread over.
const gateShards = 64

type resumeHold struct {
	done  chan struct{}
	until time.Time
}

func (g *resumeGate) shard(channel string) *sync.RWMutex {
	h := uint32(2166136261) // FNV-1a, without allocating
	for i := 0; i < len(channel); i++ {
		h = (h ^ uint32(channel[i])) * 16777619
	}
	return &g.shards[h%gateShards]
}

// begin holds publishes to client's channel, once the deliveries to its
// shard that are under way have ended.
func (g *resumeGate) begin(client string) {
	sh := g.shard(client)
	sh.Lock()
	defer sh.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resuming == nil {
		g.resuming = make(map[string]resumeHold)
	}
	if _, ok := g.resuming[client]; !ok {
		g.active.Add(1)
	}
	g.resuming[client] = resumeHold{done: make(chan struct{}), until: time.Now().Add(resumeTimeout)}
}

// end releases client's channel.
func (g *resumeGate) end(client string) { g.release(client, nil) }

// release ends client's hold: any, or (done not nil) only the one whose
// channel is done, so an expired hold does not end a newer one.
func (g *resumeGate) release(client string, done chan struct{}) {
	if g.active.Load() == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if h, ok := g.resuming[client]; ok && (done == nil || h.done == done) {
		close(h.done)
		delete(g.resuming, client)
		g.active.Add(-1)
	}
}

// enter returns once no session of channel is being resumed, with the
// channel's shard held for reading: the caller delivers, then calls
// RUnlock on what enter returned (leave).
func (g *resumeGate) enter(channel string) *sync.RWMutex {
	sh := g.shard(channel)
	for {
		sh.RLock()
		if g.active.Load() == 0 {
			return sh
		}
		g.mu.Lock()
		h, ok := g.resuming[channel]
		g.mu.Unlock()
		if !ok {
			return sh
		}
		sh.RUnlock()
		t := time.NewTimer(time.Until(h.until))
		select {
		case <-h.done:
		case <-t.C:
			g.release(channel, h.done) // the resend never said it was done
		}
		t.Stop()
	}
}
