#!/bin/bash
# LocalStack ready hook: makes the resources Sluice's services expect, the
# same ones `sluice provision` (pkg/provision) and the Terraform make:
#
#   bucket   $SLUICE_BUCKET, with an s3:ObjectCreated:* notification for
#            input/* (any name: .csv, .csv.gz, .xlsx...) and reference/*.csv
#            to the ingest queue
#   queues   ${SLUICE_QUEUE_PREFIX}{ingest,chunks,merge,notify,deliveries}, each with a
#            -dlq dead-letter queue after MAX_RECEIVE receives, and the
#            visibility timeout of pkg/provision.Visibility
#   tables   ${SLUICE_TABLE_PREFIX}{batches,rejects,reference}, with the key
#            schemas of pkg/dynamoledger CreateTables
#   SES      $SLUICE_MAIL_FROM as a verified identity (LocalStack refuses mail
#            from an unverified sender)
#
# LocalStack runs it from /etc/localstack/init/ready.d once it serves
# requests. It converges rather than creates, so running it again (or after
# `sluice provision`) changes nothing. pkg/composetest checks the names, the
# timeouts and the key schemas below against the Go code.
set -euo pipefail
shopt -s inherit_errexit

BUCKET="${SLUICE_BUCKET:-sluice-data}"
QUEUE_PREFIX="${SLUICE_QUEUE_PREFIX:-sluice-}"
TABLE_PREFIX="${SLUICE_TABLE_PREFIX:-sluice-}"
MAIL_FROM="${SLUICE_MAIL_FROM:-sluice@example.com}"
REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"
export AWS_DEFAULT_REGION="$REGION"

# queue:visibility-seconds, as pkg/provision.Visibility.
QUEUES="ingest:300 chunks:120 merge:300 notify:60 deliveries:120"
MAX_RECEIVE=5
# Dead letters are kept 14 days, as pkg/sqsqueue.Ensure does.
DLQ_RETENTION=1209600

log() { echo "sluice init: $*"; }

# --- bucket -----------------------------------------------------------------
if awslocal s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
  log "bucket $BUCKET exists"
else
  if [ "$REGION" = "us-east-1" ]; then
    awslocal s3api create-bucket --bucket "$BUCKET" >/dev/null
  else
    awslocal s3api create-bucket --bucket "$BUCKET" \
      --create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
  fi
  log "bucket $BUCKET created"
fi
awslocal s3api put-public-access-block --bucket "$BUCKET" --public-access-block-configuration \
  BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
awslocal s3api put-bucket-encryption --bucket "$BUCKET" --server-side-encryption-configuration \
  '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'

# --- queues -----------------------------------------------------------------
queue_url() { awslocal sqs get-queue-url --queue-name "$1" --query QueueUrl --output text 2>/dev/null; }
queue_arn() {
  awslocal sqs get-queue-attributes --queue-url "$1" --attribute-names QueueArn \
    --query Attributes.QueueArn --output text
}

# ensure_queue NAME: prints the queue's URL, creating it if missing.
ensure_queue() {
  local url
  if ! url="$(queue_url "$1")" || [ -z "$url" ]; then
    url="$(awslocal sqs create-queue --queue-name "$1" --query QueueUrl --output text)"
  fi
  echo "$url"
}

INGEST_URL=""
for spec in $QUEUES; do
  name="${QUEUE_PREFIX}${spec%%:*}"
  visibility="${spec##*:}"
  dlq_url="$(ensure_queue "${name}-dlq")"
  awslocal sqs set-queue-attributes --queue-url "$dlq_url" \
    --attributes "{\"MessageRetentionPeriod\":\"$DLQ_RETENTION\"}"
  dlq_arn="$(queue_arn "$dlq_url")"
  url="$(ensure_queue "$name")"
  # The redrive policy is a JSON document inside a JSON string, written the
  # way pkg/sqsqueue.Ensure writes it, so that its CreateQueue finds the same
  # attributes and leaves the queue alone.
  redrive="{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"$MAX_RECEIVE\\\"}"
  awslocal sqs set-queue-attributes --queue-url "$url" \
    --attributes "{\"VisibilityTimeout\":\"$visibility\",\"RedrivePolicy\":\"$redrive\"}"
  log "queue $name (visibility ${visibility}s, dead letters to ${name}-dlq after $MAX_RECEIVE receives)"
  if [ "${spec%%:*}" = "ingest" ]; then
    INGEST_URL="$url"
  fi
done

# --- tables -----------------------------------------------------------------
# make_table NAME DEFS KEYS [create-table options]: on-demand, as
# pkg/dynamoledger CreateTables. DEFS and KEYS are shorthand lists.
make_table() {
  local name="$1" defs="$2" keys="$3"
  shift 3
  if awslocal dynamodb describe-table --table-name "$name" >/dev/null 2>&1; then
    log "table $name exists"
  else
    # shellcheck disable=SC2086 # defs and keys are lists of shorthand arguments
    awslocal dynamodb create-table --table-name "$name" --billing-mode PAY_PER_REQUEST \
      --attribute-definitions $defs --key-schema $keys "$@" >/dev/null
    log "table $name created"
  fi
  awslocal dynamodb wait table-exists --table-name "$name"
}

# enable_ttl NAME: items expire by expiresAt, as sluice provision sets it.
enable_ttl() {
  if [ "$(awslocal dynamodb describe-time-to-live --table-name "$1" \
    --query TimeToLiveDescription.TimeToLiveStatus --output text 2>/dev/null)" = ENABLED ]; then
    log "TTL on $1 is on"
  else
    awslocal dynamodb update-time-to-live --table-name "$1" \
      --time-to-live-specification Enabled=true,AttributeName=expiresAt >/dev/null
    log "TTL on $1 turned on"
  fi
}

# batches: the sparse index "unfinished" on openState (CountByState).
make_table "${TABLE_PREFIX}batches" "AttributeName=id,AttributeType=S AttributeName=openState,AttributeType=S" \
  "AttributeName=id,KeyType=HASH" \
  --global-secondary-indexes '[{"IndexName":"unfinished","KeySchema":[{"AttributeName":"openState","KeyType":"HASH"}],"Projection":{"ProjectionType":"KEYS_ONLY"}}]'
make_table "${TABLE_PREFIX}rejects" "AttributeName=batchId,AttributeType=S AttributeName=line,AttributeType=N" \
  "AttributeName=batchId,KeyType=HASH AttributeName=line,KeyType=RANGE"
make_table "${TABLE_PREFIX}reference" "AttributeName=pk,AttributeType=S" "AttributeName=pk,KeyType=HASH"
enable_ttl "${TABLE_PREFIX}batches"
enable_ttl "${TABLE_PREFIX}rejects"

# --- S3 → ingest ------------------------------------------------------------
INGEST_ARN="$(queue_arn "$INGEST_URL")"
policy="{\\\"Version\\\":\\\"2012-10-17\\\",\\\"Statement\\\":[{\\\"Sid\\\":\\\"S3Notifications\\\",\\\"Effect\\\":\\\"Allow\\\",\\\"Principal\\\":{\\\"Service\\\":\\\"s3.amazonaws.com\\\"},\\\"Action\\\":\\\"sqs:SendMessage\\\",\\\"Resource\\\":\\\"$INGEST_ARN\\\",\\\"Condition\\\":{\\\"ArnLike\\\":{\\\"aws:SourceArn\\\":\\\"arn:aws:s3:::$BUCKET\\\"}}}]}"
awslocal sqs set-queue-attributes --queue-url "$INGEST_URL" --attributes "{\"Policy\":\"$policy\"}"

# s3:ObjectCreated:* and not :Put: a multipart upload fires
# CompleteMultipartUpload, never Put. The PUT replaces the whole
# configuration, so repeating it is harmless.
awslocal s3api put-bucket-notification-configuration --bucket "$BUCKET" --notification-configuration "{
  \"QueueConfigurations\": [{
    \"Id\": \"sluice-ingest\",
    \"QueueArn\": \"$INGEST_ARN\",
    \"Events\": [\"s3:ObjectCreated:*\"],
    \"Filter\": {\"Key\": {\"FilterRules\": [
      {\"Name\": \"prefix\", \"Value\": \"input/\"}
    ]}}
  }, {
    \"Id\": \"sluice-reference\",
    \"QueueArn\": \"$INGEST_ARN\",
    \"Events\": [\"s3:ObjectCreated:*\"],
    \"Filter\": {\"Key\": {\"FilterRules\": [
      {\"Name\": \"prefix\", \"Value\": \"reference/\"},
      {\"Name\": \"suffix\", \"Value\": \".csv\"}
    ]}}
  }]
}"
log "notification s3://$BUCKET/input/* and reference/*.csv → ${QUEUE_PREFIX}ingest"

# --- SES --------------------------------------------------------------------
awslocal ses verify-email-identity --email-address "$MAIL_FROM"
log "SES identity $MAIL_FROM verified"
log "done"
