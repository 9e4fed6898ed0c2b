package convert

import (
	"context"
	"errors"
	"time"
)

// Code classifies a conversion failure. The processor puts it into the
// job.failed event's error.code, so the values are part of the public
// contract.
type Code string

// Failure codes.
const (
	// CodeUnsupportedFormat: the input is not a type any pipeline or loader
	// handles (including formats this build of libvips has no loader for).
	CodeUnsupportedFormat Code = "unsupported_format"
	// CodeTooLarge: the input declares more pixels or a longer duration
	// than the configured limits; refused before decoding.
	CodeTooLarge Code = "too_large"
	// CodeCorruptInput: the input claims a supported type but does not
	// decode (empty, truncated, damaged).
	CodeCorruptInput Code = "corrupt_input"
	// CodeTimeout: the converter ran past its deadline and was killed.
	CodeTimeout Code = "timeout"
	// CodeConverterFailed: anything else, including a converter crash or
	// its memory limit being hit.
	CodeConverterFailed Code = "converter_failed"
	// CodeWrongFormat: a command output wrote a file that is not of its
	// declared format (sniffed), or that does not read as one.
	CodeWrongFormat Code = "wrong_output_format"
)

// Error is the error type every conversion failure is reported as.
type Error struct {
	Code Code
	// Op names the step that failed, e.g. "thumb-256.webp: vips thumbnail".
	Op string
	// Err holds the detail; for a converter process it ends with the tail
	// of its stderr. Paths inside the job's work dir are shown relative to
	// it, so the message can be shown to the uploader.
	Err error
	// CPU is the CPU time the conversion's processes used before it
	// failed.
	CPU time.Duration
}

func (e *Error) Error() string {
	return e.Op + ": " + string(e.Code) + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the failure code for err: the Code of an [*Error] in its
// chain, CodeTimeout for a deadline, and CodeConverterFailed otherwise.
// Callers should test errors.Is(err, context.Canceled) first: a canceled
// conversion (shutdown) is not a job failure and should be retried.
func CodeOf(err error) Code {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeTimeout
	}
	return CodeConverterFailed
}

func fail(code Code, op string, err error) *Error {
	return &Error{Code: code, Op: op, Err: err}
}
