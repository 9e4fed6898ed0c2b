package sqs

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

const jsonContentType = "application/x-amz-json-1.0"

// decodeJSON decodes an AWS JSON 1.0 request body into a new I.
func decodeJSON[I any](body []byte) (*I, error) {
	in := new(I)
	if len(bytes.TrimSpace(body)) == 0 {
		return in, nil
	}
	if err := json.Unmarshal(body, in); err != nil {
		return nil, apiErr(ErrSerialization, "Cannot deserialize the request body: %v", err)
	}
	return in, nil
}

func (s *Service) serveJSON(w http.ResponseWriter, r *http.Request, c *call, target string) {
	action, ok := strings.CutPrefix(target, "AmazonSQS.")
	op, known := operations[action]
	if !ok || !known {
		s.writeJSONError(w, apiErr(ErrInvalidAction, "The action %s is not valid for this endpoint.", target))
		return
	}
	body, err := readBody(r)
	if err != nil {
		s.writeJSONError(w, err)
		return
	}
	out, err := op.json(s, r.Context(), c, body)
	if err != nil {
		s.logFailure(action, err)
		s.writeJSONError(w, err)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		s.logFailure(action, err)
		s.writeJSONError(w, err)
		return
	}
	w.Header().Set("Content-Type", jsonContentType)
	w.Write(b)
}

// writeJSONError writes an error the way SQS's JSON protocol does: __type
// with the Smithy shape id, plus the x-amzn-query-error header the SDK uses
// (SQS is awsQueryCompatible) to report the legacy error code.
func (s *Service) writeJSONError(w http.ResponseWriter, err error) {
	e, _ := asAPIError(err)
	fault := "Sender"
	if !e.Kind.Sender {
		fault = "Receiver"
	}
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("x-amzn-query-error", e.Kind.QueryCode+";"+fault)
	w.WriteHeader(e.Kind.Status)
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{"com.amazonaws.sqs#" + e.Kind.Code, e.Message})
	w.Write(b)
}
