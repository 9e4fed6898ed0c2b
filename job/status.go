package job

import (
	"errors"
	"time"

	"github.com/heraldgw/herald/event"
)

// ErrNoJob: the app has no job of that id (never started, or its record
// expired).
var ErrNoJob = errors.New("no such job")

// States of a job, as GET /v1/jobs/{jobId} reports them.
const (
	// StateQueued: submitted (POST /v1/jobs), not started yet.
	StateQueued = "queued"
	// StateAccepted: a pipeline took the input (job.accepted was sent);
	// no output is done yet.
	StateAccepted = "accepted"
	// StateConverting: some outputs are done; Progress says how many.
	StateConverting = "converting"
	// StateCompleted: job.completed was sent; Outputs has fresh URLs.
	StateCompleted = "completed"
	// StateFailed: job.failed was sent; Error has its code.
	StateFailed = "failed"
)

// Status is a job's current state read from its records, for services and
// support staff. Browsers learn the same from the job's events and never
// ask for it.
type Status struct {
	JobID    string `json:"jobId"`
	App      string `json:"app"`
	Channel  string `json:"channel"`
	State    string `json:"state"`
	Pipeline string `json:"pipeline,omitempty"`
	// Input is the object being converted, with its sniffed type once
	// the job started.
	Input    *event.Object   `json:"input,omitempty"`
	Progress *event.Progress `json:"progress,omitempty"`
	// Outputs of a completed job, each with a presigned GET URL signed
	// for this answer.
	Outputs []event.Output `json:"outputs,omitempty"`
	// Error of a failed job: the code and message of job.failed.
	Error *event.Error `json:"error,omitempty"`
	// CreatedAt is when the job began (the upload's S3 event, or the
	// submission); UpdatedAt, when it ended.
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}
