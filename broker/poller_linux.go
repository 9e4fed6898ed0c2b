//go:build linux

package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// pollerReadSize is each poller's read buffer: one read takes at most this
// much from one socket before the next ready socket gets its turn.
const pollerReadSize = 64 << 10

// poller waits on many sockets with one epoll instance and reads whichever
// are ready on its own goroutine, so an idle WebSocket has no goroutine
// parked in a read and no read buffer: its bytes are decoded straight out
// of the poller's buffer. Sockets are registered EPOLLONESHOT: after each
// event the socket stays disarmed until its reader has room again (see
// wsConn.readable), which is the transport's backpressure.
type poller struct {
	epfd int
	ep   *os.File        // epfd, waited on through the Go runtime's netpoller
	rc   syscall.RawConn // of ep
	wake int             // eventfd that ends run
	log  *slog.Logger

	mu    sync.Mutex
	conns map[uint64]*wsConn
	next  uint64 // ids start at 1; 0 is the wake eventfd
}

// pollerAvailable reports whether this platform has the polled transport.
const pollerAvailable = true

func newPoller(log *slog.Logger) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("eventfd2: %w", errno)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // data 0: the wake-up
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(wake), &ev); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(int(wake))
		return nil, fmt.Errorf("epoll_ctl add eventfd: %w", err)
	}
	// run waits for the epoll set to be readable through the runtime's
	// netpoller, so a waiting poller holds no thread and no P: a blocking
	// epoll_wait would keep its P in a system call until sysmon takes it
	// back (up to 10 ms), stalling every goroutine it had just woken when
	// GOMAXPROCS is 1 (one core, or a process pinned to one).
	if err := syscall.SetNonblock(epfd, true); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(int(wake))
		return nil, fmt.Errorf("epoll set non-blocking: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		_ = syscall.Close(int(wake))
		return nil, fmt.Errorf("epoll raw conn: %w", err)
	}
	return &poller{epfd: epfd, ep: ep, rc: rc, wake: int(wake), log: log, conns: make(map[uint64]*wsConn)}, nil
}

// run reads ready sockets until stop. It is the only reader of every
// registered socket.
func (p *poller) run() {
	defer func() {
		_ = p.ep.Close()
		_ = syscall.Close(p.wake)
	}()
	buf := make([]byte, pollerReadSize)
	events := make([]syscall.EpollEvent, 128)
	var n int
	var err error
	wait := func(fd uintptr) bool {
		n, err = syscall.EpollWait(int(fd), events, 0)
		return n > 0 || (err != nil && !errors.Is(err, syscall.EINTR))
	}
	for {
		if rerr := p.rc.Read(wait); rerr != nil && err == nil {
			err = rerr
		}
		if err != nil {
			p.log.Error("epoll_wait failed; WebSocket reads stop", "error", err)
			p.failAll(fmt.Errorf("epoll_wait: %w", err))
			return
		}
		for i := range events[:n] {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			if id == 0 {
				return
			}
			p.mu.Lock()
			c := p.conns[id]
			p.mu.Unlock()
			if c != nil { // nil: removed after the event was queued
				c.readable(buf)
			}
		}
	}
}

// stop ends run. Connections still registered are left to their owners.
func (p *poller) stop() {
	var one = [8]byte{1}
	_, _ = syscall.Write(p.wake, one[:])
}

// add registers c and arms it for its first read.
func (p *poller) add(c *wsConn) error {
	p.mu.Lock()
	p.next++
	c.id = p.next
	p.conns[c.id] = c
	p.mu.Unlock()
	if err := c.ctl(syscall.EPOLL_CTL_ADD); err != nil {
		p.mu.Lock()
		delete(p.conns, c.id)
		p.mu.Unlock()
		return err
	}
	return nil
}

// remove forgets c; a later event for it is ignored.
func (p *poller) remove(c *wsConn) {
	p.mu.Lock()
	delete(p.conns, c.id)
	p.mu.Unlock()
}

// ctl applies an epoll operation to c's socket while holding it open, so
// the call can never reach a descriptor number the kernel has reused.
func (c *wsConn) ctl(op int) error {
	var cerr error
	err := c.rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{
			Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
			Fd:     int32(uint32(c.id)),
			Pad:    int32(uint32(c.id >> 32)),
		}
		cerr = syscall.EpollCtl(c.p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("epoll_ctl: %w", cerr)
	}
	return nil
}

// readOnce is one non-blocking read of c's socket into buf.
func (c *wsConn) readOnce(buf []byte) (int, error) {
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = syscall.Read(int(fd), buf)
			if rerr != syscall.EINTR {
				return true // never park: readiness comes from the poller
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if n < 0 {
		n = 0
	}
	return n, rerr
}

func (p *poller) failAll(err error) {
	p.mu.Lock()
	conns := make([]*wsConn, 0, len(p.conns))
	for _, c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.endStream(err)
	}
}
