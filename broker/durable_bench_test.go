package broker

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
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
	tb := startBroker(b, Config{DataDir: b.TempDir(), MaxStored: 65535, Logger: quietLogger()})
	names := make([]string, n)
	for i := range names {
		s := mint(b, tb, "demo")
		_ = subscribed(b, dialTCP(b, tb), 4, s).c.Close()
		names[i] = topic.Events("demo", s.Channel)
	}
	testkit.WaitFor(b, 10*time.Second, "browsers gone", func() bool { return tb.Clients() == 0 })
	return tb, names
}
