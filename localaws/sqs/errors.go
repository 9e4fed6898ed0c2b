package sqs

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrorKind identifies one class of SQS error. The sentinel values below are
// comparable with errors.Is against any error returned by this package.
type ErrorKind struct {
	// Code is the JSON-protocol error shape name (the part after
	// "com.amazonaws.sqs#" in __type).
	Code string
	// QueryCode is the code the Query protocol (and the JSON protocol's
	// x-amzn-query-error header) uses; the SDK reports it as ErrorCode().
	QueryCode string
	// Status is the HTTP status code AWS answers with.
	Status int
	// Sender is false only for server-side faults.
	Sender bool
}

// Error makes an ErrorKind usable directly as a sentinel error.
func (k *ErrorKind) Error() string { return k.QueryCode }

func kind(code, queryCode string, status int) *ErrorKind {
	if queryCode == "" {
		queryCode = code
	}
	return &ErrorKind{Code: code, QueryCode: queryCode, Status: status, Sender: true}
}

// Sentinel errors, one per AWS error code this service produces. The codes
// and statuses follow the SQS Smithy model (awsQueryError traits).
var (
	ErrQueueDoesNotExist              = kind("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", http.StatusBadRequest)
	ErrQueueAlreadyExists             = kind("QueueNameExists", "QueueAlreadyExists", http.StatusBadRequest)
	ErrReceiptHandleIsInvalid         = kind("ReceiptHandleIsInvalid", "", http.StatusNotFound)
	ErrMessageNotInflight             = kind("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", http.StatusBadRequest)
	ErrInvalidParameterValue          = kind("InvalidParameterValue", "", http.StatusBadRequest)
	ErrMissingParameter               = kind("MissingParameter", "", http.StatusBadRequest)
	ErrInvalidAttributeName           = kind("InvalidAttributeName", "", http.StatusBadRequest)
	ErrInvalidAttributeValue          = kind("InvalidAttributeValue", "", http.StatusBadRequest)
	ErrInvalidMessageContents         = kind("InvalidMessageContents", "", http.StatusBadRequest)
	ErrBatchEntryIdsNotDistinct       = kind("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", http.StatusBadRequest)
	ErrEmptyBatchRequest              = kind("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", http.StatusBadRequest)
	ErrTooManyEntriesInBatch          = kind("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", http.StatusBadRequest)
	ErrInvalidBatchEntryID            = kind("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", http.StatusBadRequest)
	ErrBatchRequestTooLong            = kind("BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", http.StatusBadRequest)
	ErrUnsupportedOperation           = kind("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", http.StatusBadRequest)
	ErrInvalidAction                  = kind("InvalidAction", "", http.StatusBadRequest)
	ErrSerialization                  = kind("SerializationException", "", http.StatusBadRequest)
	ErrInternal                       = &ErrorKind{Code: "InternalError", QueryCode: "InternalError", Status: http.StatusInternalServerError}
	errClosed                         = errors.New("sqs: service closed")
	_                           error = (*Error)(nil)
)

// Error is an SQS API error: a kind plus a human-readable message.
type Error struct {
	Kind    *ErrorKind
	Message string
}

func (e *Error) Error() string { return e.Kind.QueryCode + ": " + e.Message }

// Unwrap lets errors.Is match the sentinel kind.
func (e *Error) Unwrap() error { return e.Kind }

func apiErr(k *ErrorKind, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// asAPIError maps any error to the API error written on the wire; errors that
// are not *Error become InternalError (their text is logged, not sent).
func asAPIError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	var k *ErrorKind
	if errors.As(err, &k) {
		return &Error{Kind: k, Message: k.QueryCode}, true
	}
	return &Error{Kind: ErrInternal, Message: "We encountered an internal error. Please try again."}, false
}

func errNoQueue(name string) error {
	return apiErr(ErrQueueDoesNotExist, "The specified queue %q does not exist.", name)
}

func errInvalidParam(param string, value any, reason string) error {
	return apiErr(ErrInvalidParameterValue, "Value %v for parameter %s is invalid. Reason: %s", value, param, reason)
}

func errMissing(param string) error {
	return apiErr(ErrMissingParameter, "The request must contain the parameter %s.", param)
}
