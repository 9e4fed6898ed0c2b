#!/bin/sh
# aws-setup.sh — create Herald's S3 bucket, SQS queue (+ dead-letter queue),
# the queue policy that lets S3 send to it, the bucket CORS rule and the
# bucket → queue event notifications, with the aws CLI (v2).
#
# Idempotent: re-running updates the same resources.
#
# Environment:
#   BUCKET    bucket name                  (default herald)
#   QUEUE     queue name                   (default herald-events; DLQ is $QUEUE-dlq)
#   REGION    AWS region                   (default us-east-1)
#   ORIGINS   comma-separated web origins allowed to upload (default http://localhost:8080)
#   ENDPOINT  endpoint URL, e.g. http://127.0.0.1:4566 for localaws (default: real AWS)
#   AWS       aws CLI to run               (default aws)
#   VISIBILITY_TIMEOUT  seconds a message is hidden while a job runs (default 300)
set -eu

BUCKET=${BUCKET:-herald}
QUEUE=${QUEUE:-herald-events}
DLQ=${QUEUE}-dlq
REGION=${REGION:-us-east-1}
ORIGINS=${ORIGINS:-http://localhost:8080}
AWS=${AWS:-aws}
VISIBILITY_TIMEOUT=${VISIBILITY_TIMEOUT:-300}

aws_() {
	if [ -n "${ENDPOINT:-}" ]; then
		"$AWS" --region "$REGION" --endpoint-url "$ENDPOINT" --output text "$@"
	else
		"$AWS" --region "$REGION" --output text "$@"
	fi
}

echo "queues: $QUEUE, $DLQ"
dlq_url=$(aws_ sqs create-queue --queue-name "$DLQ" --attributes MessageRetentionPeriod=1209600 --query QueueUrl)
dlq_arn=$(aws_ sqs get-queue-attributes --queue-url "$dlq_url" --attribute-names QueueArn --query Attributes.QueueArn)
queue_url=$(aws_ sqs create-queue --queue-name "$QUEUE" --query QueueUrl)
queue_arn=$(aws_ sqs get-queue-attributes --queue-url "$queue_url" --attribute-names QueueArn --query Attributes.QueueArn)

# S3 may send to the queue only for this bucket (aws:SourceArn). Attribute
# values are JSON strings inside a JSON map, hence the escaping.
policy=$(printf '{"Version":"2012-10-17","Statement":[{"Sid":"S3Notifications","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sqs:SendMessage","Resource":"%s","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::%s"}}}]}' "$queue_arn" "$BUCKET")
redrive=$(printf '{"deadLetterTargetArn":"%s","maxReceiveCount":"5"}' "$dlq_arn")
esc() { printf '%s' "$1" | sed 's/"/\\"/g'; }
aws_ sqs set-queue-attributes --queue-url "$queue_url" --attributes \
	"{\"Policy\":\"$(esc "$policy")\",\"RedrivePolicy\":\"$(esc "$redrive")\",\"VisibilityTimeout\":\"$VISIBILITY_TIMEOUT\"}"

echo "bucket: $BUCKET"
if ! aws_ s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
	if [ "$REGION" = us-east-1 ]; then
		aws_ s3api create-bucket --bucket "$BUCKET" >/dev/null
	else
		aws_ s3api create-bucket --bucket "$BUCKET" --create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
	fi
fi

# Browsers POST uploads straight to the bucket from the app's origins.
origins_json=$(printf '%s' "$ORIGINS" | awk -F, '{for (i = 1; i <= NF; i++) printf "%s\"%s\"", (i > 1 ? "," : ""), $i}')
aws_ s3api put-bucket-cors --bucket "$BUCKET" --cors-configuration \
	"{\"CORSRules\":[{\"AllowedOrigins\":[$origins_json],\"AllowedMethods\":[\"POST\",\"PUT\",\"GET\",\"HEAD\"],\"AllowedHeaders\":[\"*\"],\"ExposeHeaders\":[\"ETag\"],\"MaxAgeSeconds\":3600}]}"

# New uploads, and the processor's fan-in manifests, go to the queue.
aws_ s3api put-bucket-notification-configuration --bucket "$BUCKET" --notification-configuration "{\"QueueConfigurations\":[
 {\"Id\":\"herald-uploads\",\"QueueArn\":\"$queue_arn\",\"Events\":[\"s3:ObjectCreated:*\"],\"Filter\":{\"Key\":{\"FilterRules\":[{\"Name\":\"prefix\",\"Value\":\"uploads/\"}]}}},
 {\"Id\":\"herald-manifests\",\"QueueArn\":\"$queue_arn\",\"Events\":[\"s3:ObjectCreated:*\"],\"Filter\":{\"Key\":{\"FilterRules\":[{\"Name\":\"prefix\",\"Value\":\"converted/\"},{\"Name\":\"suffix\",\"Value\":\"manifest.json\"}]}}}]}"

echo "done: s3://$BUCKET/uploads/* -> $queue_url (dead letters: $dlq_url)"
