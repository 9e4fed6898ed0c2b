package broker

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// Errors of an outbox.
var (
	// errWouldBlock is a sink's answer when the socket takes no more
	// without waiting.
	errWouldBlock = errors.New("broker: write would block")
	// errQueueFull refuses a delivery to a connection that already has
	// its bound of deliveries waiting to be written.
	errQueueFull = errors.New("broker: client write queue full")
)

// outboxKeep is the largest buffer a drained outbox gives back to the pool.
const outboxKeep = 64 << 10

// buffer is a pooled byte slice (the pool holds pointers, so putting one
// back allocates nothing).
type buffer struct{ b []byte }

var outboxBufs = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, 4<<10)} }}

func getBuf() *buffer {
	bf := outboxBufs.Get().(*buffer)
	bf.b = bf.b[:0]
	return bf
}

func putBuf(bf *buffer) {
	if bf == nil || cap(bf.b) > outboxKeep {
		return
	}
	outboxBufs.Put(bf)
}

// sink is a socket as an outbox writes to it, in the transport's own bytes
// (WebSocket frames already built).
type sink interface {
	// tryWrite writes what it can of p without waiting: (n, errWouldBlock)
	// when the socket's buffer filled after n bytes.
	tryWrite(p []byte) (int, error)
	// writeFull writes all of p, waiting at most until deadline.
	writeFull(p []byte, deadline time.Time) error
}

// outbox serializes everything written to one connection — mochi's packets,
// deliveries made by the broker's own publish path and the transport's
// control frames — and writes it without a goroutine of its own while the
// socket keeps up: the goroutine that sends writes straight to the socket
// (one write(2), no hand-off), and whatever is sent meanwhile by others is
// appended and goes out in the same or the next write (batched writes).
// Only when the socket's buffer is full does a flusher goroutine take over,
// waiting up to the write timeout; a connection that does not drain by
// then is closed.
//
// Deliveries (not mochi's own packets) are bounded: at most max of them
// wait at once, beyond that send refuses them with errQueueFull. Before
// that, room makes a publisher wait for the queue to drain (backpressure),
// once per congestion: a connection that stays stuck stops slowing
// publishers until it drains.
type outbox struct {
	s       sink
	timeout time.Duration // longest wait for the socket to take a write
	max     int           // deliveries that may wait
	spawn   func(func())  // runs the flusher on a goroutine the broker waits for
	onFail  func()        // ends the connection after a failed write

	mu      sync.Mutex
	pending *buffer // transport bytes not yet written, in order; nil: none
	queued  int     // deliveries in pending
	busy    bool    // a writer (inline or the flusher) owns the socket
	err     error   // why nothing more is written
	stalled bool    // a publisher's wait for room timed out; cleared when drained
	drained chan struct{}
}

func newOutbox(s sink, max int, timeout time.Duration, spawn func(func()), onFail func()) *outbox {
	if spawn == nil {
		spawn = func(f func()) { go f() }
	}
	return &outbox{s: s, max: max, timeout: timeout, spawn: spawn, onFail: onFail}
}

// send queues b (the transport's bytes) behind everything sent before and,
// when no write is under way, writes it at once on the caller's goroutine.
// b is not kept. A delivery is refused with errQueueFull when max of them
// already wait; anything is refused once the connection failed or closed.
func (o *outbox) send(b []byte, delivery bool) error {
	o.mu.Lock()
	if o.err != nil {
		err := o.err
		o.mu.Unlock()
		return err
	}
	if delivery && o.queued >= o.max {
		o.mu.Unlock()
		return errQueueFull
	}
	if o.busy {
		if o.pending == nil {
			o.pending = getBuf()
		}
		o.pending.b = append(o.pending.b, b...)
		if delivery {
			o.queued++
		}
		o.mu.Unlock()
		return nil
	}
	o.busy = true
	o.mu.Unlock()
	o.writeInline(b, nil)
	return nil
}

// writeInline writes b and then what others queued meanwhile, as long as
// the socket takes it without waiting; the rest goes to the flusher. own
// is the outbox's buffer holding b (returned to the pool after), or nil.
func (o *outbox) writeInline(b []byte, own *buffer) {
	for round := 0; ; round++ {
		n, err := o.s.tryWrite(b)
		if err != nil && !errors.Is(err, errWouldBlock) {
			putBuf(own)
			o.fail(err)
			return
		}
		o.mu.Lock()
		if n < len(b) {
			// The socket is full: what is left of b goes out first.
			rest := getBuf()
			rest.b = append(rest.b, b[n:]...)
			putBuf(own)
			if o.pending != nil {
				rest.b = append(rest.b, o.pending.b...)
				putBuf(o.pending)
			}
			o.pending = rest
			o.mu.Unlock()
			o.spawn(o.flush)
			return
		}
		putBuf(own)
		if o.pending == nil || len(o.pending.b) == 0 {
			o.idleLocked()
			o.mu.Unlock()
			return
		}
		if round == 2 {
			// Others keep sending to this connection: hand the writing
			// over rather than write for them indefinitely.
			o.mu.Unlock()
			o.spawn(o.flush)
			return
		}
		own = o.takeLocked()
		b = own.b
		o.mu.Unlock()
	}
}

// flush writes pending until it is empty, waiting for the socket as long
// as the write timeout allows each batch.
func (o *outbox) flush() {
	for {
		o.mu.Lock()
		if o.err != nil {
			o.busy = false
			o.mu.Unlock()
			return
		}
		if o.pending == nil || len(o.pending.b) == 0 {
			o.idleLocked()
			o.mu.Unlock()
			return
		}
		bf := o.takeLocked()
		o.mu.Unlock()
		err := o.s.writeFull(bf.b, time.Now().Add(o.timeout))
		putBuf(bf)
		if err != nil {
			o.fail(err)
			return
		}
	}
}

// takeLocked hands the pending bytes to a writer.
func (o *outbox) takeLocked() *buffer {
	b := o.pending
	o.pending = nil
	o.queued = 0
	o.wakeLocked()
	return b
}

// idleLocked ends a writer's turn.
func (o *outbox) idleLocked() {
	o.busy = false
	o.stalled = false
	putBuf(o.pending)
	o.pending = nil
	o.wakeLocked()
}

func (o *outbox) wakeLocked() {
	if o.drained != nil {
		close(o.drained)
		o.drained = nil
	}
}

// fail stops all writing after err and ends the connection.
func (o *outbox) fail(err error) { o.stop(err, true) }

// stop refuses everything after err; with notify, the connection is ended.
func (o *outbox) stop(err error, notify bool) {
	o.mu.Lock()
	first := o.err == nil
	if first {
		o.err = err
	}
	o.busy = false
	putBuf(o.pending)
	o.pending = nil
	o.queued = 0
	o.wakeLocked()
	o.mu.Unlock()
	if first && notify && o.onFail != nil {
		o.onFail()
	}
}

// room reports whether a delivery may be sent now: below half of max at
// once; above, the caller waits up to wait for the queue to drain. A wait
// that times out marks the connection stalled, and deliveries to it stop
// waiting (and start being refused at max) until it drains. It returns
// the time spent waiting.
func (o *outbox) room(wait time.Duration) (bool, time.Duration) {
	o.mu.Lock()
	if o.err != nil {
		o.mu.Unlock()
		return false, 0
	}
	if o.queued < o.max/2 || o.stalled || wait <= 0 {
		ok := o.queued < o.max
		o.mu.Unlock()
		return ok, 0
	}
	if o.drained == nil {
		o.drained = make(chan struct{})
	}
	ch := o.drained
	o.mu.Unlock()
	start := time.Now()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		o.mu.Lock()
		o.stalled = true
		o.mu.Unlock()
	}
	waited := time.Since(start)
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err == nil && o.queued < o.max, waited
}

// finish writes what is pending and then last, waiting until deadline,
// and refuses everything after. It is how a connection says goodbye (a
// WebSocket close frame).
func (o *outbox) finish(last []byte, deadline time.Time) error {
	for {
		o.mu.Lock()
		if o.err != nil {
			err := o.err
			o.mu.Unlock()
			return err
		}
		if !o.busy {
			break
		}
		if o.drained == nil {
			o.drained = make(chan struct{})
		}
		ch := o.drained
		o.mu.Unlock()
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-ch:
			t.Stop()
		case <-t.C:
			o.fail(errWriteTimeout)
			return errWriteTimeout
		}
	}
	bf := o.pending
	o.pending = nil
	o.err = net.ErrClosed
	o.busy = true
	o.mu.Unlock()
	if bf == nil {
		bf = getBuf()
	}
	bf.b = append(bf.b, last...)
	err := o.s.writeFull(bf.b, deadline)
	putBuf(bf)
	o.mu.Lock()
	o.busy = false
	o.wakeLocked()
	o.mu.Unlock()
	return err
}

// idle reports whether nothing is queued or being written.
func (o *outbox) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.busy && o.pending == nil
}

// close refuses everything from now on; pending bytes are dropped.
// The connection is being closed by its owner already.
func (o *outbox) close() { o.stop(net.ErrClosed, false) }

// errWriteTimeout ends a connection whose socket did not take a write
// within the write timeout.
var errWriteTimeout = errors.New("broker: write timed out")

// fdSink writes to a socket's file descriptor without blocking (the
// runtime keeps it non-blocking) and, when it must wait, through the
// net.Conn with a deadline. One outbox writer uses it at a time.
type fdSink struct {
	nc interface {
		Write([]byte) (int, error)
		SetWriteDeadline(time.Time) error
	}
	rc syscall.RawConn // nil: every write waits (no descriptor to try)

	// The call in progress, kept here so tryWrite allocates nothing.
	p     []byte
	n     int
	err   error
	write func(fd uintptr) bool
}

func newFDSink(nc net.Conn) *fdSink {
	s := &fdSink{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			s.rc = rc
		}
	}
	s.write = func(fd uintptr) bool {
		s.n, s.err = writeNonblocking(fd, s.p)
		return true
	}
	return s
}

func (s *fdSink) tryWrite(p []byte) (int, error) {
	if s.rc == nil {
		return 0, errWouldBlock
	}
	s.p, s.n, s.err = p, 0, nil
	werr := s.rc.Write(s.write)
	n, err := s.n, s.err
	s.p = nil
	if err == nil && werr != nil {
		err = werr
	}
	return n, err
}

func (s *fdSink) writeFull(p []byte, deadline time.Time) error {
	_ = s.nc.SetWriteDeadline(deadline)
	_, err := s.nc.Write(p)
	if err == nil {
		_ = s.nc.SetWriteDeadline(time.Time{})
	} else if errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
		err = errWriteTimeout
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
