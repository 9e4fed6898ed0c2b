package processor

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/event"
)

// An output's record (what job.completed says about it) travels as the
// output object's user metadata, so one PUT stores both and no separate
// marker object is needed: the object's presence under the job's prefix
// means the output is done, and its metadata names the job that made it.
const (
	metaJob      = "herald-job"
	metaName     = "herald-name"
	metaWidth    = "herald-width"
	metaHeight   = "herald-height"
	metaDuration = "herald-duration"
)

// outputMeta is the metadata stored with an output of job jobID.
func outputMeta(jobID string, o event.Output) map[string]string {
	m := map[string]string{metaJob: jobID, metaName: o.Name}
	if o.Width > 0 || o.Height > 0 {
		m[metaWidth], m[metaHeight] = strconv.Itoa(o.Width), strconv.Itoa(o.Height)
	}
	if o.Duration > 0 {
		m[metaDuration] = strconv.FormatFloat(o.Duration, 'f', -1, 64)
	}
	return m
}

// storedOutput reads the record of output file of the job back from its
// object. found is false when the object is missing or was not written by
// this job's output step (then the step makes it again).
func (p *Processor) storedOutput(ctx context.Context, st *State, file string) (o event.Output, found bool, err error) {
	key := st.job().OutputKey(file)
	head, err := p.cfg.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key)})
	switch {
	case isNotFound(err):
		return event.Output{}, false, nil
	case err != nil:
		return event.Output{}, false, fmt.Errorf("head output s3://%s/%s: %w", p.cfg.Bucket, key, err)
	}
	m := head.Metadata
	if m[metaJob] != st.JobID || m[metaName] == "" {
		return event.Output{}, false, nil
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
			return event.Output{}, false, fmt.Errorf("output s3://%s/%s: bad metadata %v: %w", p.cfg.Bucket, key, m, e)
		}
	}
	return o, true, nil
}
