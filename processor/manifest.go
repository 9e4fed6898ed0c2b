package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/job"
	"github.com/heraldgw/herald/processor/convert"
)

// Manifest is what an external converter writes last, as
// converted/{app}/{channel}/{jobId}/manifest.json, after storing its
// outputs under the same prefix. Its arrival (the bucket notifies the
// queue of it) completes the job: the processor publishes job.completed
// with a presigned GET URL for every output.
//
//	{"outputs":[{"name":"thumb","key":"converted/demo/<channel>/<jobId>/thumb.webp",
//	             "contentType":"image/webp","width":256,"height":171,"bytes":9876},
//	            {"name":"clip","key":"…/clip.mp3","contentType":"audio/mpeg","duration":12.5,"bytes":200000}],
//	 "input":{"bucket":"herald","key":"uploads/…","size":123,"contentType":"image/tiff"}}
//
// name, key, contentType and bytes are required; every key must lie under
// the manifest's own prefix; at most 64 outputs. input is optional and
// copied into the event. duration is in seconds.
type Manifest struct {
	Outputs []event.Output `json:"outputs"`
	Input   *event.Object  `json:"input,omitempty"`
}

// pipelineExternal names, in logs and metrics, the jobs an external
// converter finished.
const pipelineExternal = "external"

// ParseManifest decodes and checks the manifest stored at key.
func ParseManifest(key string, b []byte) (*Manifest, error) {
	k, err := job.ParseManifestKey(key)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("manifest %s: trailing data", key)
	}
	if len(m.Outputs) == 0 || len(m.Outputs) > maxOutputs {
		return nil, fmt.Errorf("manifest %s: %d outputs, want 1-%d", key, len(m.Outputs), maxOutputs)
	}
	prefix := k.OutputKey("")
	for i, o := range m.Outputs {
		rest, ok := strings.CutPrefix(o.Key, prefix)
		switch {
		case o.Name == "" || o.ContentType == "" || o.Bytes < 0:
			return nil, fmt.Errorf("manifest %s: outputs[%d] needs name, contentType and bytes >= 0", key, i)
		case !ok || rest == "" || rest == job.ManifestName:
			return nil, fmt.Errorf("manifest %s: outputs[%d] key %q is not under %s", key, i, o.Key, prefix)
		case o.Width < 0 || o.Height < 0 || o.Duration < 0:
			return nil, fmt.Errorf("manifest %s: outputs[%d] has a negative size", key, i)
		}
		m.Outputs[i].URL = ""
	}
	return &m, nil
}

// manifest completes an externally converted job.
func (p *Processor) manifest(ctx context.Context, k job.Key, bucket, key string) error {
	if bucket != p.cfg.Bucket {
		p.log.Warn("manifest in another bucket ignored", "bucket", bucket, "key", key)
		return nil
	}
	raw, found, err := getBytes(ctx, p.cfg.S3, bucket, key)
	switch {
	case err != nil:
		return err
	case !found:
		p.log.Warn("manifest gone before it was read", "key", key)
		return nil
	}
	st := &State{Herald: stateMarker, V: stateVersion, App: k.App, Channel: k.Channel, JobID: k.JobID, Source: SourceUpload,
		Step: StepStart, Input: StateInput{Bucket: bucket, Key: key}, Pipeline: pipelineExternal}
	const writer = "manifest"
	// The job may have been started elsewhere with no record here: make
	// one, unless there is one already.
	if err := p.putJSON(ctx, recordKey(p.cfg.MarkerPrefix, k.App, k.JobID), recordOf(st, nil), true); err != nil && !isPreconditionFailed(err) {
		return err
	}
	m, err := ParseManifest(key, raw)
	if err != nil {
		// It will never parse: tell the browser rather than retry.
		p.log.Warn("bad manifest", "key", key, "err", err)
		e := p.envelope(st, event.TypeFailed, writer, 2, nil)
		e.Input = nil
		e.Error = &event.Error{Code: string(convert.CodeConverterFailed), Message: "the job manifest is not valid"}
		return p.end(ctx, st, writer, e, usage{}, err.Error())
	}
	if err := p.sign(ctx, m.Outputs); err != nil {
		return err
	}
	e := p.envelope(st, event.TypeCompleted, writer, int64(len(m.Outputs)+2), &event.Progress{Done: len(m.Outputs), Total: len(m.Outputs)})
	e.Input, e.Outputs = m.Input, m.Outputs
	p.log.LogAttrs(ctx, slog.LevelDebug, "manifest read", slog.String("job", k.JobID), slog.Int("outputs", len(m.Outputs)))
	return p.end(ctx, st, writer, e, usage{}, "")
}
