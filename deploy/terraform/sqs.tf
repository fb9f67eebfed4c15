# The five stage queues, each with a dead-letter queue after
# var.max_receive_count receives, the same as `sluice provision` makes.
# Visibility timeouts are longer than each stage's usual work; the services'
# heartbeat extends them while a message is being handled.

locals {
  # Services read these names from SLUICE_QUEUE_PREFIX; it is derived from a
  # created queue so the task definitions depend on the queues.
  queue_prefix = trimsuffix(aws_sqs_queue.ingest.name, "ingest")

  dlq_retention_seconds = 1209600 # 14 days, the SQS maximum
}

resource "aws_sqs_queue" "ingest_dlq" {
  name                      = "${var.name_prefix}ingest-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "ingest" {
  name                       = "${var.name_prefix}ingest"
  visibility_timeout_seconds = 300
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true # S3 event notifications can send to SSE-SQS queues
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.ingest_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue" "chunks_dlq" {
  name                      = "${var.name_prefix}chunks-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "chunks" {
  name                       = "${var.name_prefix}chunks"
  visibility_timeout_seconds = 120
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.chunks_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue" "merge_dlq" {
  name                      = "${var.name_prefix}merge-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "merge" {
  name                       = "${var.name_prefix}merge"
  visibility_timeout_seconds = 300
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.merge_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue" "notify_dlq" {
  name                      = "${var.name_prefix}notify-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "notify" {
  name                       = "${var.name_prefix}notify"
  visibility_timeout_seconds = 60
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.notify_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue" "deliveries_dlq" {
  name                      = "${var.name_prefix}deliveries-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
}

# One message per (batch, sink), sent by the merger beside the notify
# message; the deliverer delivers to partners' sinks.
resource "aws_sqs_queue" "deliveries" {
  name                       = "${var.name_prefix}deliveries"
  visibility_timeout_seconds = 120
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.deliveries_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# S3 may send to the ingest queue only for this bucket, from this account.
data "aws_iam_policy_document" "ingest_queue" {
  statement {
    sid     = "S3Notifications"
    effect  = "Allow"
    actions = ["sqs:SendMessage"]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    resources = [aws_sqs_queue.ingest.arn]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.this.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "ingest" {
  queue_url = aws_sqs_queue.ingest.id
  policy    = data.aws_iam_policy_document.ingest_queue.json
}
