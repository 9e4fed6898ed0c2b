package broker

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/tenant"
	"github.com/heraldgw/herald/topic"
)

// BenchmarkDurablePublish measures what durable acknowledgement costs:
// Publish QoS 1 to channels whose browsers are offline with a persistent
// session (every publish is a stored message), waiting for the fsync
// ("durable") or returning once queued for the store's writer
// ("write-behind", how Publish behaved before). The same run gives both,
// for one publisher at a time and for 64 concurrent ones (group commit),
// e.g.
//
//	go test ./broker -run '^$' -bench DurablePublish -benchtime 2s
//
// The data directory is a temporary directory on the machine's disk.
func BenchmarkDurablePublish(b *testing.B) {
	for _, publishers := range []int{1, 64} {
		for _, mode := range []string{"write-behind", "durable"} {
			b.Run(fmt.Sprintf("publishers=%d/%s", publishers, mode), func(b *testing.B) {
				tb, names := offlineSessions(b, 500)
				tb.store.writeBehind = mode == "write-behind"
				payload := []byte(`{"v":1,"type":"job.progress","id":"evt_0123456789","seq":2,"progress":{"done":1,"total":3}}`)
				var next atomic.Int64
				b.SetParallelism(max(1, publishers/max(1, runtime.GOMAXPROCS(0))))
				b.ResetTimer()
				if publishers == 1 {
					for i := range b.N {
						if err := tb.Publish(context.Background(), names[i%len(names)], payload, PublishOptions{QoS: 1}); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							i := next.Add(1)
							if err := tb.Publish(context.Background(), names[int(i)%len(names)], payload, PublishOptions{QoS: 1}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
				tb.stop()
			})
		}
	}
}

// offlineSessions starts a broker on a temporary directory with n browser
// sessions that subscribed with a persistent session and went away.
func offlineSessions(b *testing.B, n int) (*testBroker, []string) {
	b.Helper()
	// The app's queued cap (100,000 by default) is lifted: a long run
	// queues more than that, and a refusal is not what is measured.
	reg, err := tenant.NewRegistry([]tenant.App{{ID: "demo", APIKey: demoKey, Secret: strings.Repeat("d", 32),
		Origins: []string{demoOrigin}, MaxQueued: -1, MaxQueuedBytes: -1}})
	if err != nil {
		b.Fatal(err)
	}
	tb := startBroker(b, Config{Registry: reg, DataDir: b.TempDir(), MaxStored: 65535, Logger: quietLogger()})
	names := make([]string, n)
	for i := range names {
		s := mint(b, tb, "demo")
		_ = subscribed(b, dialTCP(b, tb), 4, s).c.Close()
		names[i] = topic.Events("demo", s.Channel)
	}
	testkit.WaitFor(b, 10*time.Second, "browsers gone", func() bool { return tb.Clients() == 0 })
	return tb, names
}

// BenchmarkServicePublish: one service connection publishing QoS 1 to 500
// offline persistent sessions over MQTT, waiting for each PUBACK (window
// 1) or keeping up to 64 PUBLISHes in flight, durable and write-behind.
func BenchmarkServicePublish(b *testing.B) {
	for _, window := range []int{1, 64} {
		for _, mode := range []string{"write-behind", "durable"} {
			b.Run(fmt.Sprintf("window=%d/%s", window, mode), func(b *testing.B) {
				tb, names := offlineSessions(b, 500)
				tb.store.writeBehind = mode == "write-behind"
				svc := newRaw(dialTCP(b, tb))
				svc.send(b, rawConnect(4, "svc-bench", "demo", demoKey, true))
				if h, body := svc.read(b); h != 0x20 || body[1] != 0 {
					b.Fatalf("CONNACK %#x %x", h, body)
				}
				_ = svc.c.SetWriteDeadline(time.Time{}) // send set one; a long run outlasts it
				payload := `{"v":1,"type":"job.progress","id":"evt_0123456789","seq":2,"progress":{"done":1,"total":3}}`
				acked := make(chan error, 1)
				slots := make(chan struct{}, window)
				go func() {
					for range b.N {
						_ = svc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
						h, _, err := readPacket(svc.r)
						if err == nil && h != 0x40 {
							err = fmt.Errorf("packet %#x, want PUBACK", h)
						}
						if err != nil {
							acked <- err
							return
						}
						<-slots
					}
					acked <- nil
				}()
				b.ResetTimer()
				for i := range b.N {
					slots <- struct{}{}
					if _, err := svc.c.Write(rawPublishQoS1(4, names[i%len(names)], uint16(i%65535+1), payload)); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-acked; err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
				_ = svc.c.Close()
				tb.stop()
			})
		}
	}
}
