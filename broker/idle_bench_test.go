package broker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

// The idle-session benchmark runs the broker in a child process (this test
// binary, re-executed) so the parent's 10,000 client connections do not
// count in the broker's memory; it reads the child's VmRSS before and after.
//
//	go test ./broker -run '^$' -bench IdleWebSocketSessions -benchtime 1x
//
// BROKER_IDLE_SESSIONS overrides the number of sessions (default 10000);
// BROKER_IDLE_HEAP=path writes the child's heap profile once connected;
// BROKER_IDLE_HOLD=30s keeps the sessions open that long for inspection;
// BROKER_IDLE_IO=goroutine measures the other WebSocket read model.

const idleChildEnv = "BROKER_IDLE_CHILD"

// TestIdleChild is the child side; it does nothing in a normal test run.
func TestIdleChild(t *testing.T) {
	if os.Getenv(idleChildEnv) == "" {
		t.Skip("child process of BenchmarkIdleWebSocketSessions")
	}
	if os.Getenv("BROKER_IDLE_HEAP") != "" {
		runtime.MemProfileRate = 1 // exact attribution, slow: profiling runs only
	}
	b, err := New(Config{Registry: testRegistry(t), Logger: quietLogger(), ConnectRatePerIP: -1,
		WebSocketIO: os.Getenv("BROKER_IDLE_IO")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	testkit.WaitFor(t, 10*time.Second, "ready", b.Ready)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: b.WebSocketHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("ready ws://%s/mqtt\n", ln.Addr())

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "settle":
			// Each GC halves oversized goroutine stacks at most once; a
			// long-idle process gets there through its periodic GCs.
			for range 8 {
				runtime.GC()
			}
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("settled %d %d %d %d\n", b.Clients(), ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine())
		case "heap":
			f, err := os.Create(arg)
			if err == nil {
				err = pprof.WriteHeapProfile(f)
				_ = f.Close()
			}
			fmt.Printf("heap %v\n", err)
		}
	}
	_ = srv.Close()
	cancel()
	<-done
}

type idleChild struct {
	cmd  *exec.Cmd
	out  *bufio.Scanner
	send func(string)
	url  string
}

func startIdleChild(b *testing.B) *idleChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), idleChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &idleChild{cmd: cmd, out: bufio.NewScanner(stdout)}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line := c.line(b, "ready")
	c.url = strings.TrimPrefix(line, "ready ")
	c.send = func(s string) { _, _ = fmt.Fprintln(stdin, s) }
	return c
}

func (c *idleChild) line(b *testing.B, prefix string) string {
	b.Helper()
	for c.out.Scan() {
		if l := c.out.Text(); strings.HasPrefix(l, prefix) {
			return l
		}
	}
	b.Fatalf("child ended before %q", prefix)
	return ""
}

// settle makes the child collect garbage and return memory to the OS, then
// returns its VmRSS and what it reported.
func (c *idleChild) settle(b *testing.B) (rss int64, fields []string) {
	b.Helper()
	c.send("settle")
	fields = strings.Fields(c.line(b, "settled"))
	return c.rss(b), fields[1:]
}

func (c *idleChild) rss(b *testing.B) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func BenchmarkIdleWebSocketSessions(b *testing.B) {
	n := 10_000
	if v := os.Getenv("BROKER_IDLE_SESSIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	reg := testRegistry(&testing.T{})
	child := startIdleChild(b)
	before, info := child.settle(b)
	b.Logf("before: rss %d KiB, child reports clients/heap/stack/goroutines %v", before>>10, info)

	// Spread client addresses over 127.0.0.x so no single source address
	// runs out of ephemeral ports.
	var next atomic.Int64
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			i := next.Add(1)
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i/20000), byte(2+i%250))}}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: -1,
	}}
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var failed atomic.Int64
	work := make(chan int)
	start := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c, err := idleSession(reg, client, child.url)
				if err != nil {
					if failed.Add(1) == 1 {
						b.Errorf("session %d: %v", i, err)
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	if failed.Load() > 0 {
		b.Fatalf("%d sessions failed", failed.Load())
	}
	opened := time.Since(start)
	raw := child.rss(b)
	after, info := child.settle(b)
	if p := os.Getenv("BROKER_IDLE_HEAP"); p != "" {
		child.send("heap " + p)
		child.line(b, "heap")
	}
	per := float64(after-before) / float64(n)
	b.Logf("after %d sessions (opened in %v): rss %d KiB (before GC %d KiB); child reports clients/heap/stack/goroutines %v",
		n, opened.Round(time.Millisecond), after>>10, raw>>10, info)
	b.Logf("idle session: %.0f B (%.1f KiB) after GC; %.1f KiB before GC", per, per/1024, float64(raw-before)/float64(n)/1024)
	if d, err := time.ParseDuration(os.Getenv("BROKER_IDLE_HOLD")); err == nil {
		b.Logf("holding the sessions for %v (child pid %d)", d, child.cmd.Process.Pid)
		time.Sleep(d)
	}
	b.ReportMetric(per, "B/session")
	b.ReportMetric(float64(raw-before)/float64(n), "B/session-noGC")
}

// idleSession connects one browser session over WebSocket, subscribes to its
// channel and leaves it idle (keep-alive 1200 s, so no pings are due).
func idleSession(reg *tenant.Registry, hc *http.Client, url string) (net.Conn, error) {
	s, err := reg.Mint("demo", time.Now())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"mqtt"}, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	fail := func(err error) (net.Conn, error) { _ = nc.Close(); return nil, err }
	connect := rawConnectKA(4, s.Channel, "demo", s.Token, true, 1200)
	r := bufio.NewReader(nc)
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := nc.Write(connect); err != nil {
		return fail(err)
	}
	if h, body, err := readPacket(r); err != nil || h != 0x20 || body[1] != 0 {
		return fail(fmt.Errorf("connect: %#x %x %v", h, body, err))
	}
	if _, err := nc.Write(rawSubscribe(4, 1, topic.ChannelFilter("demo", s.Channel))); err != nil {
		return fail(err)
	}
	if h, body, err := readPacket(r); err != nil || h != 0x90 || body[2] != 1 {
		return fail(fmt.Errorf("subscribe: %#x %x %v", h, body, err))
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, nil
}
