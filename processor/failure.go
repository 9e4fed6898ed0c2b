package processor

import "github.com/heraldgw/herald/processor/convert"

// failureMessages are the messages of job.failed, one per code. They are
// written here, short and fixed, because the event reaches the browser:
// a converter's stderr names process ids, temporary paths and parser
// internals, and a free-form message could carry another tenant's data
// (an object's size, a key). The detail goes to the log only.
var failureMessages = map[convert.Code]string{
	convert.CodeUnsupportedFormat: "this file type is not converted",
	convert.CodeTooLarge:          "the file is over the conversion limits (dimensions, duration or size)",
	convert.CodeCorruptInput:      "the file could not be read: it is empty, truncated or damaged",
	convert.CodeTimeout:           "the conversion took too long and was stopped",
	convert.CodeConverterFailed:   "the file could not be converted",
	convert.CodeWrongFormat:       "the converter did not produce the expected file type",
}

// FailureMessage returns the job.failed message for code.
func FailureMessage(code convert.Code) string {
	if m, ok := failureMessages[code]; ok {
		return m
	}
	return failureMessages[convert.CodeConverterFailed]
}
