package broker

import (
	"bytes"
	"context"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// channelJoinBudget bounds how long a browser's SUBACK may wait for a
// ChannelObserver (e.g. an upstream subscription).
const channelJoinBudget = 5 * time.Second

// ChannelObserver learns which browser channels have a client connected to
// this broker. Federation uses it to follow, on an upstream broker, only the
// channels this replica holds.
type ChannelObserver interface {
	// JoinChannel is called when a browser's first SUBSCRIBE on a connection
	// arrives, before it is granted: the SUBACK waits until JoinChannel
	// returns (or ctx, at most 5 s, ends), so events published elsewhere
	// after the SUBACK reach the browser.
	JoinChannel(ctx context.Context, app, channel string)
	// LeaveChannel is called once when that connection ends.
	LeaveChannel(app, channel string)
}

// ObserveChannels registers o. Call it before Run.
func (b *Broker) ObserveChannels(o ChannelObserver) error {
	return b.srv.AddHook(&channelHook{o: o}, nil)
}

// channelHook reports browser connections that subscribed. Services
// (client id "{app}/svc-…") are not channels and are not reported.
type channelHook struct {
	mqtt.HookBase
	o      ChannelObserver
	joined sync.Map // *mqtt.Client → struct{}
}

func (h *channelHook) ID() string { return "herald-channels" }

func (h *channelHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSubscribe, mqtt.OnDisconnect}, []byte{b})
}

func (h *channelHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline || isService(cl) {
		return pk
	}
	if _, loaded := h.joined.LoadOrStore(cl, struct{}{}); !loaded {
		ctx, cancel := context.WithTimeout(context.Background(), channelJoinBudget)
		h.o.JoinChannel(ctx, string(cl.Properties.Username), cl.ID)
		cancel()
	}
	return pk
}

func (h *channelHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if _, ok := h.joined.LoadAndDelete(cl); ok {
		h.o.LeaveChannel(string(cl.Properties.Username), cl.ID)
	}
}
