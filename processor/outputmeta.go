package processor

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/job"
)

// An output's record (what job.completed says about it) travels as the
// output object's user metadata, so one PUT stores both and no separate
// marker object is needed: the object's presence under the job's prefix
// means the output is done, and its metadata names the job that made it.
//
// A command output with a files glob yields several objects
// ({name}-{file}); each carries its own metadata, and once all are stored
// a group record {MarkerPrefix}{app}/{channel}/{jobId}/outputs/{file}.json
// lists them. The group record is what marks that output done.
const (
	metaJob      = "herald-job"
	metaName     = "herald-name"
	metaWidth    = "herald-width"
	metaHeight   = "herald-height"
	metaDuration = "herald-duration"
	// metaConvertMS and metaCPUMS are the conversion's wall and CPU time,
	// summed up in the job's log line.
	metaConvertMS = "herald-convert-ms"
	metaCPUMS     = "herald-cpu-ms"
)

// usage is what converting an output cost.
type usage struct {
	convert, cpu time.Duration
}

func (u usage) add(v usage) usage { return usage{u.convert + v.convert, u.cpu + v.cpu} }

// outputRecord is a done output: its files (one, or a group's parts) and
// what making them cost.
type outputRecord struct {
	outs []event.Output
	cost usage
}

// groupRecord is the body of a group output's record.
type groupRecord struct {
	Job       string         `json:"job"`
	Outputs   []event.Output `json:"outputs"`
	ConvertMS int64          `json:"convertMs"`
	CPUMS     int64          `json:"cpuMs"`
}

// outputMeta is the metadata stored with an output of job jobID.
func outputMeta(jobID string, o event.Output, cost usage) map[string]string {
	m := map[string]string{metaJob: jobID, metaName: o.Name}
	if o.Width > 0 || o.Height > 0 {
		m[metaWidth], m[metaHeight] = strconv.Itoa(o.Width), strconv.Itoa(o.Height)
	}
	if o.Duration > 0 {
		m[metaDuration] = strconv.FormatFloat(o.Duration, 'f', -1, 64)
	}
	if cost.convert > 0 {
		m[metaConvertMS] = strconv.FormatInt(cost.convert.Milliseconds(), 10)
	}
	if cost.cpu > 0 {
		m[metaCPUMS] = strconv.FormatInt(cost.cpu.Milliseconds(), 10)
	}
	return m
}

// records reads a job's output records; the processor and the intake
// (for GET /v1/jobs/{jobId}) share it.
type records struct {
	s3           S3API
	bucket       string
	markerPrefix string
}

func (r records) groupKey(k job.Key, file string) string {
	return r.markerPrefix + k.Path() + "outputs/" + file + ".json"
}

// output reads the record of output file of job k. found is false when
// it is missing or was not written by this job's output step (then the
// step makes it again). group says the output is a glob's group record.
func (r records) output(ctx context.Context, k job.Key, file string, group bool) (rec outputRecord, found bool, err error) {
	if group {
		var g groupRecord
		found, err := getJSON(ctx, r.s3, r.bucket, r.groupKey(k, file), &g)
		if err != nil || !found || g.Job != k.JobID {
			return outputRecord{}, false, err
		}
		return outputRecord{outs: g.Outputs, cost: usage{time.Duration(g.ConvertMS) * time.Millisecond, time.Duration(g.CPUMS) * time.Millisecond}}, true, nil
	}
	o, cost, found, err := r.object(ctx, k, k.OutputKey(file))
	if err != nil || !found {
		return outputRecord{}, false, err
	}
	return outputRecord{outs: []event.Output{o}, cost: cost}, true, nil
}

// object reads one output object's record from its metadata.
func (r records) object(ctx context.Context, k job.Key, key string) (o event.Output, cost usage, found bool, err error) {
	head, err := r.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key)})
	switch {
	case isNotFound(err):
		return event.Output{}, usage{}, false, nil
	case err != nil:
		return event.Output{}, usage{}, false, fmt.Errorf("head output s3://%s/%s: %w", r.bucket, key, err)
	}
	m := head.Metadata
	if m[metaJob] != k.JobID || m[metaName] == "" {
		return event.Output{}, usage{}, false, nil
	}
	o = event.Output{Name: m[metaName], Key: key, ContentType: aws.ToString(head.ContentType), Bytes: aws.ToInt64(head.ContentLength)}
	var errs [3]error
	if m[metaWidth] != "" || m[metaHeight] != "" {
		o.Width, errs[0] = strconv.Atoi(m[metaWidth])
		o.Height, errs[1] = strconv.Atoi(m[metaHeight])
	}
	if d := m[metaDuration]; d != "" {
		o.Duration, errs[2] = strconv.ParseFloat(d, 64)
	}
	for _, e := range errs {
		if e != nil {
			return event.Output{}, usage{}, false, fmt.Errorf("output s3://%s/%s: bad metadata %v: %w", r.bucket, key, m, e)
		}
	}
	// Costs are informational: unreadable ones count as zero.
	ms := func(name string) time.Duration {
		n, _ := strconv.ParseInt(m[name], 10, 64)
		return time.Duration(n) * time.Millisecond
	}
	return o, usage{ms(metaConvertMS), ms(metaCPUMS)}, true, nil
}
