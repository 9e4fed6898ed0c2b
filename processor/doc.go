// Package processor turns uploads into converted outputs and tells the
// uploader's browser about it.
//
// [Intake] starts jobs: GrantUpload presigns a browser POST straight to
// uploads/{app}/{channel}/{jobId}/{filename}; SubmitJob enqueues an object
// that is already in S3. It needs S3 (and SQS for SubmitJob) but no
// converter, so any web process can run it.
//
// [Processor] consumes the queue S3 notifies: long polling, a window of
// held messages whose steps get workers and conversion slots by fair share
// across apps and their sessions (see fairShare), a visibility heartbeat
// while a step waits or runs, deletion only once a step's outputs are
// stored and its event published, and a drain on shutdown. A job is a chain of state messages ([State]) on the same queue:
//
//  1. the upload's S3 event (or a submitted start state) runs the start
//     step: sniff the input's first bytes (the declared name and type are
//     never trusted), pick the pipeline, publish job.accepted (seq 1) and
//     enqueue one output step per output;
//  2. each output step places the input in its own work dir (from a
//     per-process cache keyed by bucket, key and ETag, so the steps of a
//     job in one process share one download), converts it once a
//     conversion slot is free, stores converted/{app}/{channel}/{jobId}/{output file}
//     with the output's record (name, size, duration) as object metadata,
//     and publishes job.progress (seq 1+done) if its output is the latest
//     stored in pipeline order (so no two steps report the same seq; a
//     job's steps in one process take turns here, so its seq strictly
//     increases);
//  3. the step that finds every output's record completes the job: it
//     creates the job's final marker with a conditional write and
//     publishes the last job.progress (seq total+1) and job.completed
//     (seq total+2, retained) with presigned output URLs. A conversion failure ends the job the same way with
//     job.failed carrying the converter's code, so the two are exclusive.
//
// Event ids come from event.StableID(jobId, step, type), so a repeated step
// republishes the same ids. Every step is idempotent: output keys are
// deterministic, overwrites are harmless and the final marker is
// conditional. A
// processor killed mid-step leaves its message invisible until the last
// heartbeat's timeout runs out (Visibility, 10 s by default); then any
// processor reruns the step.
//
// Messages that are not job states or S3 events of an accepted shape are
// logged and left alone, so the queue's redrive policy moves them to the
// dead-letter queue; s3:TestEvent messages are deleted.
//
// External converters finish a job by writing a [Manifest].
package processor
