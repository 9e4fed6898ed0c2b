package broker

import (
	"errors"
	"net"
	"time"
)

// startConn registers a connection goroutine unless shutdown has begun.
func (b *Broker) startConn(c *conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing || !b.ready.Load() {
		return false
	}
	b.live[c] = struct{}{}
	b.conns.Add(1)
	return true
}

// closeLive closes the transports of served connections; all of them, or
// only those that have not completed CONNECT.
func (b *Broker) closeLive(all bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.live {
		if all || !c.connected.Load() {
			_ = c.Conn.Close()
		}
	}
}

// serve hands one connection to mochi and returns when it is over.
// EstablishConnection reads CONNECT, runs the hooks and then the client's
// read loop; everything about the client is logged by the hooks.
func (b *Broker) serve(listener string, c *conn) {
	defer b.conns.Done()
	defer func() {
		b.expiries.remove(c)
		b.mu.Lock()
		delete(b.live, c)
		if w := b.waiters[c]; w != nil {
			close(w)
			delete(b.waiters, c)
		}
		b.mu.Unlock()
	}()
	err := b.srv.EstablishConnection(listener, c)
	if err != nil && !c.connected.Load() && !c.refused.Load() {
		// Never got as far as a CONNECT: garbage, a timeout, a closed socket.
		b.log.Info("mqtt connection dropped before CONNECT", "transport", listener,
			"remote", c.RemoteAddr().String(), "reason", errString(err))
		b.metrics.connectsRefused.WithLabelValues("bad_connect").Inc()
	}
	_ = c.Close()
}

// served returns a channel that is closed once mochi is done with c: its
// client's read loop has ended and the disconnect hooks have run.
func (b *Broker) served(c *conn) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w := b.waiters[c]; w != nil {
		return w
	}
	w := make(chan struct{})
	if _, ok := b.live[c]; !ok {
		close(w)
		return w
	}
	if b.waiters == nil {
		b.waiters = make(map[*conn]chan struct{})
	}
	b.waiters[c] = w
	return w
}

func (b *Broker) acceptLoop() {
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			b.log.Warn("mqtt tcp accept", "error", err)
			time.Sleep(50 * time.Millisecond) // e.g. EMFILE: back off, do not spin
			continue
		}
		ip := hostOf(nc.RemoteAddr().String())
		if !b.limiter.allow(ip, time.Now()) {
			b.metrics.transportRejected.WithLabelValues("rate").Inc()
			b.log.Info("mqtt connection refused", "transport", listenerTCP, "remote", nc.RemoteAddr().String(), "reason", "connect rate exceeded")
			_ = nc.Close()
			continue
		}
		c := b.newConn(nc, "", nil)
		if !b.startConn(c) {
			_ = c.Close()
			return
		}
		go b.serve(listenerTCP, c)
	}
}
