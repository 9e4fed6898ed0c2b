package s3event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ErrMalformed is wrapped by every error [Parse] returns for a body it cannot
// understand. Test with errors.Is.
var ErrMalformed = errors.New("malformed S3 event message")

// ErrTestEvent is returned (alone, not wrapped in ErrMalformed) when the body
// is the s3:TestEvent S3 sends once when a notification is configured.
var ErrTestEvent = errors.New("s3:TestEvent")

// Object is one object-level event.
type Object struct {
	Bucket string
	// Key is the decoded object key, exactly as stored in the bucket.
	Key  string
	Size int64
	// ETag is as S3 reports it in the event (no surrounding quotes).
	ETag      string
	VersionID string
	// Sequencer orders events for the same key: compare two sequencers of
	// one key by length first, then lexically (S3's documented rule).
	Sequencer string
	// EventName uses S3's notification names ("ObjectCreated:Put",
	// "ObjectRemoved:Delete", ...), also for EventBridge input, which is
	// mapped onto them.
	EventName string
	Time      time.Time
	// Created is true for every ObjectCreated:* event: the object exists and
	// can be converted.
	Created bool
}

// maxBody bounds what Parse accepts. SQS itself caps messages at 256 KiB; a
// larger body did not come from SQS.
const maxBody = 1 << 20

// Parse returns the object events in one SQS message body. See the package
// documentation for the accepted shapes and the errors.
func Parse(body []byte) ([]Object, error) {
	if len(body) > maxBody {
		return nil, fmt.Errorf("%w: body is %d bytes, limit %d", ErrMalformed, len(body), maxBody)
	}
	return parse(body, true)
}

// envelope has the top-level fields of every accepted shape, so one decode
// tells them apart.
type envelope struct {
	Records json.RawMessage `json:"Records"`

	// SNS.
	Type    string  `json:"Type"`
	Message *string `json:"Message"`

	// s3:TestEvent.
	Service string `json:"Service"`
	Event   string `json:"Event"`

	// EventBridge.
	Version    string          `json:"version"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Time       string          `json:"time"`
	Detail     json.RawMessage `json:"detail"`
}

func parse(body []byte, allowSNS bool) ([]Object, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	if body[0] != '{' {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrMalformed)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: decode JSON: %v", ErrMalformed, err)
	}
	switch {
	case env.Event == "s3:TestEvent":
		return nil, ErrTestEvent
	case env.Records != nil:
		return parseRecords(env.Records)
	case env.Type != "":
		if !allowSNS {
			return nil, fmt.Errorf("%w: SNS envelope nested inside an SNS message", ErrMalformed)
		}
		if env.Type != "Notification" {
			return nil, fmt.Errorf("%w: SNS message type %q, want Notification", ErrMalformed, env.Type)
		}
		if env.Message == nil {
			return nil, fmt.Errorf("%w: SNS notification without Message", ErrMalformed)
		}
		objs, err := parse([]byte(*env.Message), false)
		if err != nil && !errors.Is(err, ErrTestEvent) {
			return nil, fmt.Errorf("SNS Message: %w", err)
		}
		return objs, err
	case env.Detail != nil || env.DetailType != "":
		return parseEventBridge(env)
	default:
		return nil, fmt.Errorf("%w: no Records, SNS Message or EventBridge detail", ErrMalformed)
	}
}

// record is one entry of an S3 notification's Records array.
type record struct {
	EventSource string `json:"eventSource"`
	EventName   string `json:"eventName"`
	EventTime   string `json:"eventTime"`
	S3          *struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			Size      int64  `json:"size"`
			ETag      string `json:"eTag"`
			VersionID string `json:"versionId"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	} `json:"s3"`
}

func parseRecords(raw json.RawMessage) ([]Object, error) {
	var recs []record
	if err := json.Unmarshal(raw, &recs); err != nil {
		return nil, fmt.Errorf("%w: Records: %v", ErrMalformed, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: Records is empty", ErrMalformed)
	}
	out := make([]Object, 0, len(recs))
	for i, r := range recs {
		if r.EventSource != "" && r.EventSource != "aws:s3" {
			return nil, fmt.Errorf("%w: Records[%d]: eventSource %q, want aws:s3", ErrMalformed, i, r.EventSource)
		}
		if r.S3 == nil {
			return nil, fmt.Errorf("%w: Records[%d]: no s3 field", ErrMalformed, i)
		}
		if r.EventName == "" {
			return nil, fmt.Errorf("%w: Records[%d]: no eventName", ErrMalformed, i)
		}
		if r.S3.Bucket.Name == "" {
			return nil, fmt.Errorf("%w: Records[%d]: no s3.bucket.name", ErrMalformed, i)
		}
		if r.S3.Object.Key == "" {
			return nil, fmt.Errorf("%w: Records[%d]: no s3.object.key", ErrMalformed, i)
		}
		// S3 form-encodes keys in notifications: '+' is a space.
		key, err := url.QueryUnescape(r.S3.Object.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: Records[%d]: s3.object.key %q: %v", ErrMalformed, i, r.S3.Object.Key, err)
		}
		if key == "" {
			return nil, fmt.Errorf("%w: Records[%d]: s3.object.key decodes to empty", ErrMalformed, i)
		}
		if r.S3.Object.Size < 0 {
			return nil, fmt.Errorf("%w: Records[%d]: negative s3.object.size %d", ErrMalformed, i, r.S3.Object.Size)
		}
		t, err := parseTime(r.EventTime)
		if err != nil {
			return nil, fmt.Errorf("%w: Records[%d]: eventTime: %v", ErrMalformed, i, err)
		}
		// S3 names events with or without the "s3:" prefix depending on the
		// path (notification config vs. the message); normalise.
		name := strings.TrimPrefix(r.EventName, "s3:")
		out = append(out, Object{
			Bucket:    r.S3.Bucket.Name,
			Key:       key,
			Size:      r.S3.Object.Size,
			ETag:      strings.Trim(r.S3.Object.ETag, `"`),
			VersionID: r.S3.Object.VersionID,
			Sequencer: r.S3.Object.Sequencer,
			EventName: name,
			Time:      t,
			Created:   strings.HasPrefix(name, "ObjectCreated:"),
		})
	}
	return out, nil
}

// ebDetail is the detail of an EventBridge S3 event.
type ebDetail struct {
	Bucket struct {
		Name string `json:"name"`
	} `json:"bucket"`
	Object struct {
		Key       string `json:"key"`
		Size      int64  `json:"size"`
		ETag      string `json:"etag"`
		VersionID string `json:"version-id"`
		Sequencer string `json:"sequencer"`
	} `json:"object"`
	Reason       string `json:"reason"`
	DeletionType string `json:"deletion-type"`
}

func parseEventBridge(env envelope) ([]Object, error) {
	if env.Source != "aws.s3" {
		return nil, fmt.Errorf("%w: EventBridge source %q, want aws.s3", ErrMalformed, env.Source)
	}
	if env.Detail == nil {
		return nil, fmt.Errorf("%w: EventBridge event without detail", ErrMalformed)
	}
	if env.DetailType == "" {
		return nil, fmt.Errorf("%w: EventBridge event without detail-type", ErrMalformed)
	}
	var d ebDetail
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return nil, fmt.Errorf("%w: EventBridge detail: %v", ErrMalformed, err)
	}
	if d.Bucket.Name == "" {
		return nil, fmt.Errorf("%w: EventBridge detail without bucket.name", ErrMalformed)
	}
	if d.Object.Key == "" {
		return nil, fmt.Errorf("%w: EventBridge detail without object.key", ErrMalformed)
	}
	if d.Object.Size < 0 {
		return nil, fmt.Errorf("%w: EventBridge negative object.size %d", ErrMalformed, d.Object.Size)
	}
	t, err := parseTime(env.Time)
	if err != nil {
		return nil, fmt.Errorf("%w: EventBridge time: %v", ErrMalformed, err)
	}
	name := ebEventName(env.DetailType, d.Reason, d.DeletionType)
	return []Object{{
		Bucket: d.Bucket.Name,
		// EventBridge keys are not URL-encoded.
		Key:       d.Object.Key,
		Size:      d.Object.Size,
		ETag:      strings.Trim(d.Object.ETag, `"`),
		VersionID: d.Object.VersionID,
		Sequencer: d.Object.Sequencer,
		EventName: name,
		Time:      t,
		Created:   strings.HasPrefix(name, "ObjectCreated:"),
	}}, nil
}

// ebEventName maps EventBridge's detail-type and reason onto the event names
// of S3 notifications, so consumers handle one vocabulary.
func ebEventName(detailType, reason, deletionType string) string {
	switch detailType {
	case "Object Created":
		switch reason {
		case "PutObject":
			return "ObjectCreated:Put"
		case "POST Object":
			return "ObjectCreated:Post"
		case "CopyObject":
			return "ObjectCreated:Copy"
		case "CompleteMultipartUpload":
			return "ObjectCreated:CompleteMultipartUpload"
		}
		return "ObjectCreated:" + strings.ReplaceAll(reason, " ", "")
	case "Object Deleted":
		if reason == "Lifecycle Expiration" {
			if deletionType == "Delete Marker Created" {
				return "LifecycleExpiration:DeleteMarkerCreated"
			}
			return "LifecycleExpiration:Delete"
		}
		if deletionType == "Delete Marker Created" {
			return "ObjectRemoved:DeleteMarkerCreated"
		}
		return "ObjectRemoved:Delete"
	}
	// Restore, tagging, ACL, storage-class events: keep EventBridge's name.
	return detailType
}

// parseTime accepts RFC 3339 with or without fractional seconds; an absent
// time is the zero time rather than an error, since nothing routes on it.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339", s)
	}
	return t.UTC(), nil
}
