package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldgw/herald/topic"
)

// BenchmarkFanout is the broker's publish path, one delivery per publish,
// each to a different browser (the load test's pattern): the gateway's own
// Publish ("api", what POST /v1/events and the processor use) and a
// service's MQTT PUBLISH ("mqtt"), QoS 0 and 1. The browsers are raw MQTT
// 3.1.1 clients over TCP that read without allocating (and acknowledge QoS
// 1), so allocs/op is the broker's allocations per delivery:
//
//	go test ./broker -run '^$' -bench Fanout -benchmem
func BenchmarkFanout(b *testing.B) {
	for _, src := range []string{"api", "mqtt"} {
		for _, qos := range []byte{0, 1} {
			b.Run(fmt.Sprintf("%s/qos%d", src, qos), func(b *testing.B) {
				tb := startBroker(b, Config{Logger: quietLogger(), MaxQueued: 1024})
				browsers := benchBrowsers(b, tb, 1000)
				payload := []byte(`{"v":1,"type":"job.progress","id":"evt_0123456789","seq":2,"progress":{"done":1,"total":3}}`)
				var pub func(i int)
				flush := func() {}
				if src == "api" {
					pub = func(i int) {
						if err := tb.Publish(context.Background(), browsers.names[i%len(browsers.names)], payload, PublishOptions{QoS: qos}); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					svc := benchService(b, tb)
					pub = func(i int) { svc.publish(b, browsers.names[i%len(browsers.names)], payload, qos, uint16(i%65535+1)) }
					flush = func() { svc.flush(b) }
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					pub(i)
				}
				flush()
				browsers.wait(b, int64(b.N))
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
			})
		}
	}
}

// benchSubscribers are raw browsers counting the PUBLISH packets they get.
type benchSubscribers struct {
	names []string
	got   atomic.Int64
	wg    sync.WaitGroup
}

func benchBrowsers(b *testing.B, tb *testBroker, n int) *benchSubscribers {
	return benchBrowsersT(b, tb, n)
}

func benchBrowsersT(b testing.TB, tb *testBroker, n int) *benchSubscribers {
	b.Helper()
	bs := &benchSubscribers{}
	for range n {
		s := mint(b, tb, "demo")
		nc := dialTCP(b, tb)
		rs := newRaw(nc)
		rs.send(b, rawConnect(4, s.Channel, "demo", s.Token, true))
		rs.read(b)
		rs.send(b, rawSubscribe(4, 1, topic.ChannelFilter("demo", s.Channel)))
		rs.read(b)
		bs.names = append(bs.names, topic.Events("demo", s.Channel))
		bs.wg.Add(1)
		go func() { defer bs.wg.Done(); bs.read(nc) }()
	}
	b.Cleanup(bs.wg.Wait)
	return bs
}

// read counts PUBLISH packets and acknowledges QoS 1 ones, with fixed
// buffers.
func (bs *benchSubscribers) read(nc net.Conn) {
	buf := make([]byte, 64<<10)
	var have int
	ack := []byte{0x40, 2, 0, 0}
	for {
		n, err := nc.Read(buf[have:])
		if err != nil {
			return
		}
		have += n
		off := 0
		for {
			h, body, size, ok := splitPacket(buf[off:have])
			if !ok {
				break
			}
			if h&0xf0 == 0x30 {
				bs.got.Add(1)
				if qos := (h >> 1) & 3; qos > 0 {
					tl := int(binary.BigEndian.Uint16(body))
					copy(ack[2:], body[2+tl:4+tl])
					if _, err := nc.Write(ack); err != nil {
						return
					}
				}
			}
			off += size
		}
		have = copy(buf, buf[off:have])
	}
}

// splitPacket finds the first whole MQTT packet in p.
func splitPacket(p []byte) (h byte, body []byte, size int, ok bool) {
	if len(p) < 2 {
		return 0, nil, 0, false
	}
	n, mult, i := 0, 1, 1
	for ; i < len(p) && i <= 4; i++ {
		n += int(p[i]&0x7f) * mult
		mult *= 128
		if p[i]&0x80 == 0 {
			break
		}
	}
	if i >= len(p) || 1+i+n > len(p) {
		return 0, nil, 0, false
	}
	return p[0], p[1+i : 1+i+n], 1 + i + n, true
}

func (bs *benchSubscribers) wait(b *testing.B, n int64) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for bs.got.Load() < n {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", bs.got.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	bs.got.Add(-n)
}

// benchPublisher is a raw service connection that batches its PUBLISH
// packets and drains its acknowledgements.
type benchPublisher struct {
	nc  net.Conn
	buf []byte
}

func benchService(b *testing.B, tb *testBroker) *benchPublisher {
	b.Helper()
	nc := dialTCP(b, tb)
	rs := newRaw(nc)
	rs.send(b, rawConnect(4, "svc-bench", "demo", demoKey, true))
	if h, body := rs.read(b); h != 0x20 || body[1] != 0 {
		b.Fatalf("service CONNACK %#x %x", h, body)
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}()
	return &benchPublisher{nc: nc}
}

func (p *benchPublisher) publish(b *testing.B, name string, payload []byte, qos byte, id uint16) {
	rem := 2 + len(name) + len(payload)
	if qos > 0 {
		rem += 2
	}
	p.buf = appendVarint(append(p.buf, 0x30|qos<<1), rem)
	p.buf = append(binary.BigEndian.AppendUint16(p.buf, uint16(len(name))), name...)
	if qos > 0 {
		p.buf = binary.BigEndian.AppendUint16(p.buf, id)
	}
	p.buf = append(p.buf, payload...)
	if len(p.buf) >= 16<<10 {
		p.flush(b)
	}
}

func (p *benchPublisher) flush(b *testing.B) {
	if len(p.buf) == 0 {
		return
	}
	if _, err := p.nc.Write(p.buf); err != nil {
		b.Fatal(err)
	}
	p.buf = p.buf[:0]
}
