package loadtest

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/internal/testkit"
)

// benchMosquitto starts the shared test Mosquitto (internal/testkit) and
// returns its WebSocket URL; the benchmark is skipped without Mosquitto.
func benchMosquitto(b *testing.B) string {
	b.Helper()
	return "ws://" + testkit.StartMosquitto(b).WSAddr
}

func memNow() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, runtime.NumGoroutine()
}

// BenchmarkClientMemory compares what one subscribed, idle MQTT-over-
// WebSocket client costs the load generator: this package's lean session
// against paho.golang's client on the same coder/websocket connection.
//
//	go test ./loadtest -run '^$' -bench ClientMemory -benchtime 1x
func BenchmarkClientMemory(b *testing.B) {
	url := benchMosquitto(b)
	const n = 1000
	// Mosquitto answers each step of a connect after a delayed ACK (no
	// TCP_NODELAY by default), so connects run 50 at a time.
	parallel := func(f func(k int)) {
		sem := make(chan struct{}, 50)
		var wg sync.WaitGroup
		for k := 0; k < n; k++ {
			sem <- struct{}{}
			wg.Add(1)
			go func() { defer wg.Done(); defer func() { <-sem }(); f(k) }()
		}
		wg.Wait()
	}
	d, err := newDialers(nil, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("lean", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m0, g0 := memNow()
			closing := new(atomicBool)
			rec := newRecorder()
			ss := make([]*session, n)
			var mu sync.Mutex
			parallel(func(k int) {
				mu.Lock()
				cl := d.pick()
				mu.Unlock()
				c, err := dialMQTT(context.Background(), cl, url, "")
				if err != nil {
					b.Error(err)
					return
				}
				id := randomID()
				if _, err := c.connect(time.Now().Add(10*time.Second), id, "", "", 0); err != nil {
					b.Error(err)
					return
				}
				if err := c.subscribe(time.Now().Add(10*time.Second), "lt/"+id+"/#", 1); err != nil {
					b.Error(err)
					return
				}
				s := &session{c: c}
				go s.readLoop(rec, &closing.b)
				ss[k] = s
			})
			m1, g1 := memNow()
			b.ReportMetric(float64(m1-m0)/n/1024, "KiB/conn")
			b.ReportMetric(float64(g1-g0)/n, "goroutines/conn")
			closing.b.Store(true)
			for _, s := range ss {
				s.c.close()
			}
		}
	})
	b.Run("paho", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m0, g0 := memNow()
			cs := make([]*paho.Client, n)
			parallel(func(k int) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
				if err != nil {
					b.Error(err)
					return
				}
				conn := packets.NewThreadSafeConn(websocket.NetConn(context.Background(), ws, websocket.MessageBinary))
				c := paho.NewClient(paho.ClientConfig{Conn: conn,
					OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(paho.PublishReceived) (bool, error) { return true, nil }}})
				id := randomID()
				if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 0, CleanStart: true}); err != nil {
					b.Error(err)
					return
				}
				if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "lt/" + id + "/#", QoS: 1}}}); err != nil {
					b.Error(err)
					return
				}
				cs[k] = c
			})
			m1, g1 := memNow()
			b.ReportMetric(float64(m1-m0)/n/1024, "KiB/conn")
			b.ReportMetric(float64(g1-g0)/n, "goroutines/conn")
			for _, c := range cs {
				_ = c.Disconnect(&paho.Disconnect{})
			}
		}
	})
}

type atomicBool struct{ b atomic.Bool }
