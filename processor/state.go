package processor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/heraldgw/herald/job"
)

// A job travels through the queue as a state record: every message after
// the S3 event is a State naming the next step. A step reads the state,
// does its work, enqueues what follows and deletes its own message, so
// any processor can run any step and a crash only repeats one step.
//
// Wire form (JSON, one message body):
//
//	{"herald":"job","v":1,"app":"demo","channel":"…","jobId":"…",
//	 "source":"upload","step":"output",
//	 "input":{"bucket":"herald","key":"uploads/…","size":123,"mime":"image/png"},
//	 "pipeline":"image","outputs":["thumb-256.webp",…],"output":"thumb-256.webp"}

const (
	stateMarker  = "job"
	stateVersion = 1
	// maxStateBody bounds a state message; real ones are well under 4 KiB.
	maxStateBody = 64 << 10
	maxOutputs   = 64
)

// Steps of a job.
const (
	// StepStart sniffs the input, picks the pipeline, publishes
	// job.accepted and fans out one StepOutput per output.
	StepStart = "start"
	// StepOutput makes one output and, if it was the last, completes the
	// job.
	StepOutput = "output"
)

// Sources of a job.
const (
	SourceUpload = "upload" // a browser upload under uploads/
	SourceSubmit = "submit" // POST /v1/jobs
)

// State is one job's state record.
type State struct {
	Herald   string     `json:"herald"`
	V        int        `json:"v"`
	App      string     `json:"app"`
	Channel  string     `json:"channel"`
	JobID    string     `json:"jobId"`
	Source   string     `json:"source"`
	Step     string     `json:"step"`
	Input    StateInput `json:"input"`
	Pipeline string     `json:"pipeline,omitempty"`
	// Outputs are the file names of every output of the job, in pipeline
	// order: the fan-in waits for all of them.
	Outputs []string `json:"outputs,omitempty"`
	// Output is the file this StepOutput makes.
	Output string `json:"output,omitempty"`
	// EventTime is when the job began: the upload's S3 event time, or
	// the submission. Job durations are measured from it.
	EventTime time.Time `json:"eventTime,omitzero"`
	// Waits counts how often the start waited for the app's
	// jobs-in-flight quota (each wait is longer).
	Waits int `json:"waits,omitempty"`
}

// StateInput is the job's input object.
type StateInput struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	// MIME is the sniffed type, set by the start step.
	MIME string `json:"mime,omitempty"`
}

func (s *State) job() job.Key { return job.Key{App: s.App, Channel: s.Channel, JobID: s.JobID} }

// stepID names the step for event ids and completion markers; a retry of
// a step has the same id.
func (s *State) stepID() string {
	if s.Step == StepOutput {
		return StepOutput + ":" + s.Output
	}
	return s.Step
}

// Encode marshals the state.
func (s *State) Encode() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode job state %s: %w", s.JobID, err)
	}
	return b, nil
}

var errNotState = errors.New("not a job state message")

// isState reports whether a message body claims to be a job state; S3
// events never have a top-level "herald" field.
func isState(body []byte) bool {
	var probe struct {
		Herald string `json:"herald"`
	}
	return bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) && json.Unmarshal(body, &probe) == nil && probe.Herald == stateMarker
}

// DecodeState parses and checks a state message body.
func DecodeState(body []byte) (*State, error) {
	if len(body) > maxStateBody {
		return nil, fmt.Errorf("job state of %d bytes: limit %d", len(body), maxStateBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode job state: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode job state: trailing data")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *State) validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("job state %s: %s", s.JobID, fmt.Sprintf(f, a...)) }
	switch {
	case s.Herald != stateMarker:
		return fmt.Errorf("%w: herald %q", errNotState, s.Herald)
	case s.V != stateVersion:
		return bad("version %d, want %d", s.V, stateVersion)
	case !s.job().Valid():
		return bad("app %q, channel %q, jobId %q must be 1-64 of [A-Za-z0-9_.-]", s.App, s.Channel, s.JobID)
	case s.Source != SourceUpload && s.Source != SourceSubmit:
		return bad("unknown source %q", s.Source)
	case s.Input.Bucket == "" || s.Input.Key == "" || s.Input.Size < 0:
		return bad("input needs bucket, key and a size >= 0")
	case len(s.Outputs) > maxOutputs:
		return bad("%d outputs, limit %d", len(s.Outputs), maxOutputs)
	}
	switch s.Step {
	case StepStart:
	case StepOutput:
		if s.Pipeline == "" || !slices.Contains(s.Outputs, s.Output) {
			return bad("output step needs pipeline and an output listed in outputs")
		}
		for _, o := range s.Outputs {
			if job.SafeFilename(o) != o {
				return bad("output file %q is not a plain file name", o)
			}
		}
	default:
		return bad("unknown step %q", s.Step)
	}
	return nil
}
