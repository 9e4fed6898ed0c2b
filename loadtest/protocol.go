package loadtest

import "time"

// The coordinator and its workers talk in JSON lines: the worker reads its
// WorkerConfig and then commands on stdin, and writes messages on stdout.

// Target kinds.
const (
	// KindHerald is a Herald gateway: sessions are minted (POST
	// /v1/sessions or offline with the app secret), services authenticate
	// with the app's API key.
	KindHerald = "herald"
	// KindMQTT is a plain MQTT broker with a WebSocket listener (Mosquitto):
	// anonymous clients, random client ids, one topic per client.
	KindMQTT = "mqtt"
)

// Mint modes for Herald sessions.
const (
	MintHTTP    = "http"    // POST /v1/sessions with the API key, like a browser's backend
	MintOffline = "offline" // signed locally with the app secret (tenant.Registry.Mint)
)

// Publish modes.
const (
	PublishMQTT = "mqtt" // a service MQTT connection per replica
	PublishHTTP = "http" // POST /v1/events (Herald only)
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
	Kind         string        `json:"kind"`
	Replicas     []Replica     `json:"replicas"`
	App          string        `json:"app,omitempty"`
	APIKey       string        `json:"apiKey,omitempty"`
	Secret       string        `json:"secret,omitempty"`
	Mint         string        `json:"mint,omitempty"`
	Publish      string        `json:"publish"`
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

// command is a coordinator → worker line.
type command struct {
	Cmd      string        `json:"cmd"` // "phase" or "stop"
	Index    int           `json:"index,omitempty"`
	Rate     float64       `json:"rate,omitempty"` // events per second for this worker
	Duration time.Duration `json:"duration,omitempty"`
	Drain    time.Duration `json:"drain,omitempty"`
}

// message is a worker → coordinator line.
type message struct {
	Type string `json:"type"` // progress, ready, tick, phase, done, error

	Connected int            `json:"connected,omitempty"`
	Attempted int            `json:"attempted,omitempty"`
	Failed    int            `json:"failed,omitempty"`
	Reasons   map[string]int `json:"reasons,omitempty"`
	RSS       int64          `json:"rss,omitempty"` // worker's own RSS, bytes
	Connect   *Hist          `json:"connect,omitempty"`
	RampSecs  float64        `json:"rampSecs,omitempty"`

	Phase    int     `json:"phase,omitempty"`
	Second   int     `json:"second,omitempty"`
	Latency  *Hist   `json:"latency,omitempty"`
	Sent     int64   `json:"sent,omitempty"`
	Received int64   `json:"received,omitempty"`
	Lost     int64   `json:"lost,omitempty"`
	Dup      int64   `json:"dup,omitempty"`
	OOO      int64   `json:"ooo,omitempty"`
	Bad      int64   `json:"bad,omitempty"`
	Dropped  int     `json:"dropped,omitempty"` // sessions whose connection ended
	PubFail  int64   `json:"pubFail,omitempty"`
	Backlog  int64   `json:"backlog,omitempty"` // events the worker could not send on time
	PubSecs  float64 `json:"pubSecs,omitempty"`
	CPUSecs  float64 `json:"cpuSecs,omitempty"` // the worker's own CPU time during the phase

	Error string `json:"error,omitempty"`
}
