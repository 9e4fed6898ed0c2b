package sqs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
)

// maxRequestBytes bounds a request body: a 1 MiB message, Query-encoded
// (up to 3x), plus overhead.
const maxRequestBytes = 4 << 20

// operation binds one action to both wire protocols.
type operation struct {
	json  func(s *Service, ctx context.Context, c *call, body []byte) (any, error)
	query func(s *Service, ctx context.Context, c *call, p params) (func(*xmlBuilder), error)
}

// bind builds an operation from the shared implementation run, a Query
// decoder for its input and an XML renderer for its output.
func bind[I, O any](run func(*Service, context.Context, *call, *I) (*O, error), fromQuery func(params) (*I, error), toXML func(*xmlBuilder, *O)) operation {
	return operation{
		json: func(s *Service, ctx context.Context, c *call, body []byte) (any, error) {
			in, err := decodeJSON[I](body)
			if err != nil {
				return nil, err
			}
			return run(s, ctx, c, in)
		},
		query: func(s *Service, ctx context.Context, c *call, p params) (func(*xmlBuilder), error) {
			in, err := fromQuery(p)
			if err != nil {
				return nil, err
			}
			out, err := run(s, ctx, c, in)
			if err != nil {
				return nil, err
			}
			if toXML == nil {
				return nil, nil
			}
			return func(b *xmlBuilder) { toXML(b, out) }, nil
		},
	}
}

// operations is the action table both protocols dispatch on.
var operations = map[string]operation{
	"CreateQueue":                  bind((*Service).apiCreateQueue, queryCreateQueue, xmlQueueURL),
	"GetQueueUrl":                  bind((*Service).apiGetQueueURL, queryGetQueueURL, xmlQueueURL),
	"ListQueues":                   bind((*Service).apiListQueues, queryListQueues, xmlListQueues),
	"DeleteQueue":                  bind((*Service).apiDeleteQueue, queryQueue, nil),
	"PurgeQueue":                   bind((*Service).apiPurgeQueue, queryQueue, nil),
	"GetQueueAttributes":           bind((*Service).apiGetQueueAttributes, queryGetQueueAttributes, xmlAttributes),
	"SetQueueAttributes":           bind((*Service).apiSetQueueAttributes, querySetQueueAttributes, nil),
	"SendMessage":                  bind((*Service).apiSendMessage, querySendMessage, xmlSendMessage),
	"SendMessageBatch":             bind((*Service).apiSendMessageBatch, querySendMessageBatch, xmlSendMessageBatch),
	"ReceiveMessage":               bind((*Service).apiReceiveMessage, queryReceiveMessage, xmlReceiveMessage),
	"DeleteMessage":                bind((*Service).apiDeleteMessage, queryDeleteMessage, nil),
	"DeleteMessageBatch":           bind((*Service).apiDeleteMessageBatch, queryDeleteMessageBatch, xmlBatch("DeleteMessageBatchResultEntry")),
	"ChangeMessageVisibility":      bind((*Service).apiChangeMessageVisibility, queryChangeVisibility, nil),
	"ChangeMessageVisibilityBatch": bind((*Service).apiChangeMessageVisibilityBatch, queryChangeVisibilityBatch, xmlBatch("ChangeMessageVisibilityBatchResultEntry")),
	"TagQueue":                     bind((*Service).apiTagQueue, queryTagQueue, nil),
	"UntagQueue":                   bind((*Service).apiUntagQueue, queryUntagQueue, nil),
	"ListQueueTags":                bind((*Service).apiListQueueTags, queryQueue, xmlTags),
	"ListDeadLetterSourceQueues":   bind((*Service).apiListDeadLetterSourceQueues, queryListDLQSources, xmlDLQSources),
}

// ServeHTTP answers both SQS wire protocols: AWS JSON 1.0 (an X-Amz-Target
// header "AmazonSQS.<Action>", sent by current SDKs) and Query (form field
// Action=<Action>, XML answers, sent by older SDKs and aws CLI v2.9).
// Requests may go to "/" or to a queue URL path "/{account}/{name}".
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{requestID: newRequestID(), senderID: senderID(r, s.cfg.AccountID), pathQueue: pathQueue(r.URL.Path)}
	w.Header().Set("x-amzn-RequestId", c.requestID)
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		s.serveJSON(w, r, c, target)
		return
	}
	s.serveQuery(w, r, c)
}

// pathQueue returns the queue name of a "/{account}/{name}" path.
func pathQueue(p string) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) == 2 && validQueueName(parts[1]) {
		return parts[1]
	}
	return ""
}

// senderID is the access key id of the SigV4 Authorization header, which
// stands in for the IAM user id SQS reports as SenderId.
func senderID(r *http.Request, fallback string) string {
	auth := r.Header.Get("Authorization")
	if _, rest, ok := strings.Cut(auth, "Credential="); ok {
		if key, _, ok := strings.Cut(rest, "/"); ok && key != "" {
			return key
		}
	}
	return fallback
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, apiErr(ErrInvalidParameterValue, "Request body is larger than %d bytes.", maxRequestBytes)
		}
		return nil, apiErr(ErrInvalidParameterValue, "Reading request body: %v", err)
	}
	return b, nil
}

// logFailure logs errors that are not ordinary client errors.
func (s *Service) logFailure(action string, err error) {
	if e, ok := asAPIError(err); !ok || e.Kind.Status >= 500 {
		s.log.Error("sqs request failed", "action", action, "err", err)
	}
}
