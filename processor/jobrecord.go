package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/topic"
)

// A job's record, {MarkerPrefix}{app}/{jobId}.json, lets GET
// /v1/jobs/{jobId} find a job from its app and id alone (the other records
// sit under the channel). It is written when the job is submitted and
// again when its start step has chosen the pipeline; the job's state is
// then read from the records the steps write anyway: the final marker,
// the outputs' objects and group records. So reporting costs the steps one
// PUT per job and no coordination.
type jobRecord struct {
	V       int        `json:"v"`
	App     string     `json:"app"`
	Channel string     `json:"channel"`
	JobID   string     `json:"jobId"`
	Source  string     `json:"source"`
	Input   StateInput `json:"input"`
	// Pipeline and Outputs are empty until the start step ran; Groups are
	// the outputs recorded as groups (glob command outputs).
	Pipeline string    `json:"pipeline,omitempty"`
	Outputs  []string  `json:"outputs,omitempty"`
	Groups   []string  `json:"groups,omitempty"`
	Created  time.Time `json:"created,omitzero"`
}

func recordKey(prefix, app, jobID string) string { return prefix + app + "/" + jobID + ".json" }

// recordOf is st's record; groups names the outputs recorded as groups.
func recordOf(st *State, groups []string) jobRecord {
	return jobRecord{V: 1, App: st.App, Channel: st.Channel, JobID: st.JobID, Source: st.Source, Input: st.Input,
		Pipeline: st.Pipeline, Outputs: st.Outputs, Groups: groups, Created: st.EventTime}
}

// putRecord writes the job's record as the start step knows it.
func (p *Processor) putRecord(ctx context.Context, st *State) error {
	var groups []string
	for _, file := range st.Outputs {
		if p.isGroup(st.Pipeline, file) {
			groups = append(groups, file)
		}
	}
	return p.putJSON(ctx, recordKey(p.cfg.MarkerPrefix, st.App, st.JobID), recordOf(st, groups), false)
}

// JobStatus reports the state of job jobID of app from its records:
// queued, accepted or converting (with progress) until its final marker
// exists, then completed (with freshly signed output URLs) or failed (with
// its code). It fails with job.ErrNoJob when the app has no such job.
func (in *Intake) JobStatus(ctx context.Context, app, jobID string) (job.Status, error) {
	if !topic.ValidSegment(app) || !topic.ValidSegment(jobID) {
		return job.Status{}, fmt.Errorf("job id %q: %w", jobID, job.ErrInvalid)
	}
	if in.cfg.S3 == nil {
		return job.Status{}, fmt.Errorf("processor intake: S3 is required to read jobs")
	}
	var rec jobRecord
	found, err := getJSON(ctx, in.cfg.S3, in.cfg.Bucket, recordKey(in.cfg.MarkerPrefix, app, jobID), &rec)
	switch {
	case err != nil:
		return job.Status{}, err
	case !found || rec.App != app || rec.JobID != jobID:
		return job.Status{}, fmt.Errorf("job %s of app %s: %w", jobID, app, job.ErrNoJob)
	}
	k := job.Key{App: app, Channel: rec.Channel, JobID: jobID}
	st := job.Status{JobID: jobID, App: app, Channel: rec.Channel, State: job.StateQueued, Pipeline: rec.Pipeline, CreatedAt: rec.Created,
		Input: &event.Object{Bucket: rec.Input.Bucket, Key: rec.Input.Key, Size: rec.Input.Size, ContentType: rec.Input.MIME}}
	var fm finalMarker
	found, err = getJSON(ctx, in.cfg.S3, in.cfg.Bucket, in.cfg.MarkerPrefix+k.Path()+"final.json", &fm)
	switch {
	case err != nil:
		return job.Status{}, err
	case found && fm.Event != nil:
		return in.endedStatus(ctx, st, fm.Event)
	case rec.Pipeline == "":
		return st, nil
	}
	r := records{s3: in.cfg.S3, bucket: in.cfg.Bucket, markerPrefix: in.cfg.MarkerPrefix}
	groups := map[string]bool{}
	for _, g := range rec.Groups {
		groups[g] = true
	}
	_, stored, err := r.outputs(ctx, k, rec.Outputs, func(file string) bool { return groups[file] })
	if err != nil {
		return job.Status{}, err
	}
	done := 0
	for _, f := range stored {
		if f {
			done++
		}
	}
	st.State = job.StateAccepted
	if done > 0 {
		st.State = job.StateConverting
	}
	st.Progress = &event.Progress{Done: done, Total: len(rec.Outputs)}
	return st, nil
}

// endedStatus fills st from the job's final event, signing the outputs'
// URLs afresh (the event's may have expired).
func (in *Intake) endedStatus(ctx context.Context, st job.Status, e *event.Envelope) (job.Status, error) {
	st.State, st.UpdatedAt, st.Progress, st.Error = job.StateCompleted, e.Time, e.Progress, e.Error
	if e.Input != nil {
		st.Input = e.Input
	}
	if e.Error != nil {
		st.State = job.StateFailed
		return st, nil
	}
	st.Outputs = append([]event.Output(nil), e.Outputs...)
	for i := range st.Outputs {
		req, err := in.cfg.Presigner.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(in.cfg.Bucket), Key: aws.String(st.Outputs[i].Key)},
			s3.WithPresignExpires(in.cfg.URLExpiry))
		if err != nil {
			return job.Status{}, fmt.Errorf("presign %s: %w", st.Outputs[i].Key, err)
		}
		st.Outputs[i].URL = req.URL
	}
	return st, nil
}
