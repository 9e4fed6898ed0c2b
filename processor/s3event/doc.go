// Package s3event turns the body of one SQS message into the S3 object events
// it carries.
//
// Real deployments deliver S3 notifications to a queue in four shapes, all
// accepted by [Parse]:
//
//   - S3 → SQS directly: {"Records":[{"eventName":"ObjectCreated:Put","s3":{...}}, ...]}
//   - S3 → SNS → SQS: an SNS envelope {"Type":"Notification","Message":"<the
//     Records document as a JSON string>",...}
//   - S3 → SNS → SQS with raw message delivery: identical to the direct shape
//   - S3 → EventBridge → SQS: {"version":"0","source":"aws.s3",
//     "detail-type":"Object Created","detail":{"bucket":{...},"object":{...}}}
//
// Keys in the Records shapes are form-encoded by S3 ('+' is a space, %XX an
// escaped byte) and are decoded here; EventBridge keys arrive plain and are
// used as they are. The s3:TestEvent that S3 sends when a notification is
// configured yields [ErrTestEvent], so a consumer can delete the message
// without treating it as a failure. Anything else that cannot be understood
// yields an error wrapping [ErrMalformed] that names what was wrong; such a
// message will never parse, so a consumer should move it aside (dead-letter)
// rather than retry it.
//
// A consumer typically does:
//
//	objs, err := s3event.Parse(body)
//	switch {
//	case errors.Is(err, s3event.ErrTestEvent):
//		// delete the message, nothing to do
//	case errors.Is(err, s3event.ErrMalformed):
//		// log, dead-letter
//	}
//	for _, o := range objs {
//		if o.Created { /* start a job for o.Bucket, o.Key */ }
//	}
package s3event
