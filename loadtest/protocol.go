package loadtest

import "time"

// The coordinator and its workers talk in JSON lines: the worker reads its
// WorkerConfig and then commands on stdin, and writes messages on stdout.

// Kind is what a target is.
type Kind string

// Target kinds.
const (
	// KindHerald is a Herald gateway: sessions are minted (POST
	// /v1/sessions or offline with the app secret), services authenticate
	// with the app's API key.
	KindHerald Kind = "herald"
	// KindMQTT is a plain MQTT broker with a WebSocket listener (Mosquitto):
	// anonymous clients, random client ids, one topic per client.
	KindMQTT Kind = "mqtt"
)

// MintMode is how Herald sessions are minted.
type MintMode string

// Mint modes for Herald sessions.
const (
	MintHTTP    MintMode = "http"    // POST /v1/sessions with the API key, like a browser's backend
	MintOffline MintMode = "offline" // signed locally with the app secret (tenant.Registry.Mint)
)

// PublishMode is how events reach the target.
type PublishMode string

// Publish modes.
const (
	PublishMQTT PublishMode = "mqtt" // a service MQTT connection per replica
	PublishHTTP PublishMode = "http" // POST /v1/events (Herald only)
)

// Replica is one gateway process (or the one broker) of a target.
type Replica struct {
	// Base is the HTTP base URL ("http://127.0.0.1:8080"); empty for a
	// plain broker.
	Base string `json:"base,omitempty"`
	// WS is the MQTT-over-WebSocket URL ("ws://127.0.0.1:8080/mqtt").
	WS string `json:"ws"`
}

// WorkerConfig is everything one worker process needs.
type WorkerConfig struct {
	Index        int           `json:"index"`
	Kind         Kind          `json:"kind"`
	Replicas     []Replica     `json:"replicas"`
	App          string        `json:"app,omitempty"`
	APIKey       string        `json:"apiKey,omitempty"`
	Secret       string        `json:"secret,omitempty"`
	Mint         MintMode      `json:"mint,omitempty"`
	Publish      PublishMode   `json:"publish"`
	Sessions     int           `json:"sessions"`
	FirstSession int           `json:"firstSession"` // global index of this worker's first session
	Ramp         float64       `json:"ramp"`         // connects per second for this worker
	QoS          byte          `json:"qos"`
	PayloadBytes int           `json:"payloadBytes"`
	KeepAlive    time.Duration `json:"keepAlive"`
	Publishers   int           `json:"publishers"` // service connections per replica
	SourceIPs    []string      `json:"sourceIPs,omitempty"`
	Origin       string        `json:"origin,omitempty"`
	Timeout      time.Duration `json:"timeout"` // per connect step
	RunID        string        `json:"runId"`
}

// cmdType names a coordinator → worker command.
type cmdType string

// The commands.
const (
	cmdPhase cmdType = "phase" // publish at a rate for a duration, then report
	cmdStop  cmdType = "stop"  // close every session and exit
)

// command is a coordinator → worker line.
type command struct {
	Cmd   cmdType `json:"cmd"`
	Index int     `json:"index,omitempty"`
	Rate  float64 `json:"rate,omitempty"` // events per second for this worker
	// Publishers is how many of the worker's publishers per replica take
	// part (0: all).
	Publishers int           `json:"publishers,omitempty"`
	Duration   time.Duration `json:"duration,omitempty"`
	Drain      time.Duration `json:"drain,omitempty"`
}

// msgType names a worker → coordinator message.
type msgType string

// The messages.
const (
	msgProgress msgType = "progress" // sessions connected and failed so far
	msgReady    msgType = "ready"    // the ramp is over
	msgTick     msgType = "tick"     // one second of a phase's latencies
	msgPhase    msgType = "phase"    // a phase's totals
	msgDone     msgType = "done"     // stopped on command
	msgError    msgType = "error"    // the worker failed
	// msgExit is never sent: the coordinator notes with it that a worker's
	// output has ended.
	msgExit msgType = "exit"
)

// Delivery counts one phase's events: in a worker's phase message and,
// summed over the workers, in the phase's result.
type Delivery struct {
	Sent     int64 `json:"sent"`
	Received int64 `json:"received"`
	Lost     int64 `json:"lost"`
	Dup      int64 `json:"dup"`
	OOO      int64 `json:"ooo"`
	Bad      int64 `json:"bad,omitempty"`
	PubFail  int64 `json:"pubFail,omitempty"`
	Backlog  int64 `json:"backlog"` // events a worker could not send on time
}

// add sums o into d.
func (d *Delivery) add(o Delivery) {
	d.Sent += o.Sent
	d.Received += o.Received
	d.Lost += o.Lost
	d.Dup += o.Dup
	d.OOO += o.OOO
	d.Bad += o.Bad
	d.PubFail += o.PubFail
	d.Backlog += o.Backlog
}

// since is what the counters d gained after prev (running totals of the
// sessions); Lost follows from Sent and Received.
func (d Delivery) since(prev Delivery) Delivery {
	out := Delivery{
		Sent: d.Sent - prev.Sent, Received: d.Received - prev.Received,
		Dup: d.Dup - prev.Dup, OOO: d.OOO - prev.OOO, Bad: d.Bad - prev.Bad,
	}
	out.Lost = out.Sent - out.Received
	return out
}

// message is a worker → coordinator line.
type message struct {
	Type msgType `json:"type"`

	Connected int            `json:"connected,omitempty"`
	Attempted int            `json:"attempted,omitempty"`
	Failed    int            `json:"failed,omitempty"`
	Reasons   map[string]int `json:"reasons,omitempty"`
	RSS       int64          `json:"rss,omitempty"` // worker's own RSS, bytes
	Connect   *Hist          `json:"connect,omitempty"`
	RampSecs  float64        `json:"rampSecs,omitempty"`

	Phase   int   `json:"phase,omitempty"`
	Second  int   `json:"second,omitempty"`
	Latency *Hist `json:"latency,omitempty"`
	// Delivery is set in phase messages only.
	*Delivery
	Dropped int     `json:"dropped,omitempty"` // sessions whose connection ended
	PubSecs float64 `json:"pubSecs,omitempty"`
	CPUSecs float64 `json:"cpuSecs,omitempty"` // the worker's own CPU time during the phase

	Error string `json:"error,omitempty"`
}
