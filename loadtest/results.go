package loadtest

// Results is one run: every target under the same sessions and publish
// pattern, in order.
type Results struct {
	Started  string         `json:"started"` // RFC 3339
	Command  string         `json:"command,omitempty"`
	Commit   string         `json:"commit,omitempty"`
	Host     Host           `json:"host"`
	Settings Settings       `json:"settings"`
	Targets  []TargetResult `json:"targets"`
}

// Host describes the machine.
type Host struct {
	CPUs    int     `json:"cpus"`
	MemGiB  float64 `json:"memGiB"`
	LoadAvg string  `json:"loadAvg,omitempty"` // /proc/loadavg at start
	FDLimit uint64  `json:"fdLimit,omitempty"`
}

// Settings are the run's parameters.
type Settings struct {
	Sessions     int         `json:"sessions"`
	Workers      int         `json:"workers"`
	Ramp         float64     `json:"ramp"`
	Rates        []float64   `json:"rates"`
	DurationSecs float64     `json:"durationSecs"`
	QoS          byte        `json:"qos"`
	PayloadBytes int         `json:"payloadBytes"`
	Publish      PublishMode `json:"publish"`
	Publishers   []int       `json:"publishers,omitempty"` // publisher counts swept
	Views        []View      `json:"views,omitempty"`
	ServerCPUs   []int       `json:"serverCpus,omitempty"` // when pinned
	ClientCPUs   []int       `json:"clientCpus,omitempty"`
}

// TargetResult is what one target did.
type TargetResult struct {
	Name     string `json:"name"`
	Kind     Kind   `json:"kind"`
	Replicas int    `json:"replicas"`
	Workers  int    `json:"workers"`

	Sessions    int            `json:"sessions"`
	Connected   int            `json:"connected"`
	Failed      int            `json:"failed"`
	Reasons     map[string]int `json:"reasons,omitempty"`
	ConnectTime Percentiles    `json:"connectTime"`
	RampSecs    float64        `json:"rampSecs"`
	RampRate    float64        `json:"rampRate"` // sessions connected per second

	ServerPIDs      []int           `json:"serverPids,omitempty"`
	BaselineRSS     int64           `json:"baselineRss"` // all server processes, before the ramp
	IdleRSS         int64           `json:"idleRss"`     // after the ramp and Settle
	RSSPerSession   float64         `json:"rssPerSession"`
	PerProcess      []ProcessResult `json:"perProcess,omitempty"`
	ClientRSS       int64           `json:"clientRss"` // all workers, at ready
	RampCPUSecs     float64         `json:"rampCpuSecs"`
	Phases          []PhaseResult   `json:"phases"`
	Memory          []MemPoint      `json:"memory"`
	Timeline        []TimePoint     `json:"timeline"`
	SessionsDropped int             `json:"sessionsDropped"`
	Error           string          `json:"error,omitempty"`
}

// ProcessResult is one server process after the ramp.
type ProcessResult struct {
	PID           int     `json:"pid"`
	Sessions      int     `json:"sessions"`
	BaselineRSS   int64   `json:"baselineRss"`
	IdleRSS       int64   `json:"idleRss"`
	RSSPerSession float64 `json:"rssPerSession"`
}

// PhaseResult is one publish rate held for the phase duration, with a
// number of publishers, in a view.
type PhaseResult struct {
	Rate       float64 `json:"rate"`
	Publishers int     `json:"publishers,omitempty"` // publisher connections per worker and replica
	View       View    `json:"view,omitempty"`
	Achieved   float64 `json:"achieved"` // events sent per second
	Delivered  float64 `json:"delivered"`
	Delivery
	Latency   Percentiles `json:"latency"`
	ServerCPU float64     `json:"serverCpu"` // cores busy during the phase
	ClientCPU float64     `json:"clientCpu"` // cores the load generator's workers used
	ServerRSS int64       `json:"serverRss"`
	ClientRSS int64       `json:"clientRss"`
}

// MemPoint is one sample of connected sessions against server memory.
type MemPoint struct {
	T        float64 `json:"t"`
	Sessions int     `json:"sessions"`
	RSS      int64   `json:"rss"`
}

// TimePoint is one second of one phase.
type TimePoint struct {
	T     float64 `json:"t"` // seconds since the first phase started
	Phase int     `json:"phase"`
	Rate  float64 `json:"rate"`
	Percentiles
}
