# One task role per service, each naming only the queues, tables and object
# prefixes its stage touches, and one execution role shared by the five
# task definitions for pulling the image and writing logs.
#
# pkg/deploytest parses this file: keep each service's permissions in the
# data "aws_iam_policy_document" named after the service, with resources
# written as references (aws_sqs_queue.chunks.arn) or as
# "${aws_s3_bucket.this.arn}/<prefix>" templates.

locals {
  # Batch IDs are the first path segment, so per-batch prefixes are
  # wildcards: */output/parts/* is <batch>/output/parts/<part>.
  all_queues_arn = "arn:${local.partition}:sqs:${var.region}:${local.account_id}:${var.name_prefix}*"
  worker_tasks   = "arn:${local.partition}:ecs:${var.region}:${local.account_id}:task/${aws_ecs_cluster.this.name}/*"
  ses_identities = [for id in var.ses_identities : "arn:${local.partition}:ses:${var.region}:${local.account_id}:identity/${id}"]
}

# Only ECS tasks of this account may assume the task roles (the
# confused-deputy guard the ECS task role documentation recommends).
data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.region}:${local.account_id}:*"]
    }
  }
}

# --- Execution role: ECS itself, before the container starts ---------------

# The agent assumes the execution role; it gets the plain service trust.
data "aws_iam_policy_document" "ecs_execution_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}ecs-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_execution_assume.json
}

# ECR pulls and awslogs. Images from a private registry other than ECR need
# repositoryCredentials and secretsmanager:GetSecretValue as well.
resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

# --- splitter: ingest -> chunks, merge, notify, ingest ----------------------

resource "aws_iam_role" "splitter" {
  name               = "${var.name_prefix}splitter-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "splitter" {
  statement {
    sid       = "ConsumeIngest"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.ingest.arn]
  }
  statement {
    sid       = "DeadLetterIngest"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.ingest_dlq.arn]
  }
  statement {
    sid       = "SendOnward"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.chunks.arn, aws_sqs_queue.merge.arn, aws_sqs_queue.notify.arn]
  }
  # A huge input is scanned by several splitter tasks: the one that gets
  # its event sends the scan ranges to its own queue (pkg/pipeline/scansplit.go).
  statement {
    sid       = "SendScanRanges"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.ingest.arn]
  }
  dynamic "statement" {
    for_each = var.resolve_all_queue_urls ? [1] : []
    content {
      sid       = "ResolveQueueUrls"
      actions   = ["sqs:GetQueueUrl"]
      resources = [local.all_queues_arn]
    }
  }
  # The input is removed with a DeleteObject under If-Match (its batch's
  # ETag: a new upload of the same name is left alone), which S3 allows
  # only with s3:GetObject as well as s3:DeleteObject on the key.
  statement {
    sid       = "ReadAndRemoveInput"
    actions   = ["s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.this.arn}/input/*"]
  }
  # A split retried after a crash between the archive copy and the batch
  # update finds input/ gone and reads the archived copy instead
  # (pipeline/split.go), so the archive is read as well as written.
  # input_archive/* covers both <name> and <batch>/<name> keys.
  statement {
    sid       = "ReadArchive"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/input_archive/*"]
  }
  statement {
    sid       = "WriteChunksAndArchive"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.this.arn}/*/to_process/*", "${aws_s3_bucket.this.arn}/input_archive/*"]
  }
  # The task that stitches a huge input's scan ranges reads their
  # summaries, which the scan tasks wrote under the batch's to_process/.
  statement {
    sid       = "ReadScanSummaries"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/*/to_process/*"]
  }
  # Without s3:ListBucket, S3 answers a missing key with 403, not 404, and
  # the splitter could not tell "the file was deleted before it could be
  # read" from a real refusal. It lists key names only: reading the archived
  # copy needs its own s3:GetObject (ReadArchive).
  statement {
    sid       = "TellMissingObjects"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]
  }
  statement {
    sid       = "Batches"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.batches.arn]
  }
  # A CSV put under reference/ becomes the new reference version: the
  # splitter loads it, and collects the versions no unfinished batch uses
  # (which scans the batches table).
  statement {
    sid       = "LoadReferences"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/reference/*"]
  }
  statement {
    sid = "ReferenceVersions"
    # Scan: collecting a superseded version finds its rows by scanning.
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:Scan"]
    resources = [aws_dynamodb_table.reference.arn]
  }
  statement {
    sid       = "BatchesUsingVersions"
    actions   = ["dynamodb:Scan"]
    resources = [aws_dynamodb_table.batches.arn]
  }
}

resource "aws_iam_role_policy" "splitter" {
  name   = "splitter"
  role   = aws_iam_role.splitter.id
  policy = data.aws_iam_policy_document.splitter.json
}

# --- worker: chunks -> merge ------------------------------------------------

resource "aws_iam_role" "worker" {
  name               = "${var.name_prefix}worker-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "ConsumeChunks"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.chunks.arn]
  }
  statement {
    sid       = "DeadLetterChunks"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.chunks_dlq.arn]
  }
  statement {
    sid       = "SendOnward"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.merge.arn, aws_sqs_queue.notify.arn] # notify: a dead chunk fails its batch
  }
  dynamic "statement" {
    for_each = var.resolve_all_queue_urls ? [1] : []
    content {
      sid       = "ResolveQueueUrls"
      actions   = ["sqs:GetQueueUrl"]
      resources = [local.all_queues_arn]
    }
  }
  statement {
    sid       = "ReadChunks"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/*/to_process/*", "${aws_s3_bucket.this.arn}/input_archive/*"] # chunks are ranges of the archived input
  }
  statement {
    sid       = "WriteParts"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.this.arn}/*/output/parts/*", "${aws_s3_bucket.this.arn}/*/output/errors/*"]
  }
  # A missing chunk must read as 404 so it is dead-lettered at once as
  # missing_object instead of being retried as a refusal.
  statement {
    sid       = "TellMissingObjects"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]
  }
  statement {
    sid       = "Batches"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.batches.arn]
  }
  statement {
    sid       = "Rejects"
    actions   = ["dynamodb:BatchWriteItem"]
    resources = [aws_dynamodb_table.rejects.arn]
  }
  statement {
    sid       = "Reference"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem"]
    resources = [aws_dynamodb_table.reference.arn]
  }
  # The worker protects itself from scale-in while it holds messages through
  # the ECS agent, $ECS_AGENT_URI/task-protection/v1/state. The agent calls
  # ECS UpdateTaskProtection with the task role's credentials, so the task
  # role needs these actions; they are limited to this cluster's tasks.
  statement {
    sid       = "OwnTaskScaleInProtection"
    actions   = ["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"]
    resources = [local.worker_tasks]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }
}

resource "aws_iam_role_policy" "worker" {
  name   = "worker"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

# --- merger: merge -> notify, deliveries ------------------------------------------------

resource "aws_iam_role" "merger" {
  name               = "${var.name_prefix}merger-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "merger" {
  statement {
    sid       = "ConsumeMerge"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.merge.arn]
  }
  statement {
    sid       = "DeadLetterMerge"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.merge_dlq.arn]
  }
  statement {
    sid       = "SendOnward"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.notify.arn, aws_sqs_queue.deliveries.arn]
  }
  dynamic "statement" {
    for_each = var.resolve_all_queue_urls ? [1] : []
    content {
      sid       = "ResolveQueueUrls"
      actions   = ["sqs:GetQueueUrl"]
      resources = [local.all_queues_arn]
    }
  }
  statement {
    sid       = "ReadParts"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/*/output/parts/*", "${aws_s3_bucket.this.arn}/*/output/errors/*"]
  }
  statement {
    sid       = "WriteCompleted"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.this.arn}/*/output/completed/*"]
  }
  statement {
    sid       = "Batches"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.batches.arn]
  }
}

resource "aws_iam_role_policy" "merger" {
  name   = "merger"
  role   = aws_iam_role.merger.id
  policy = data.aws_iam_policy_document.merger.json
}

# --- notifier: notify -> email ----------------------------------------------

resource "aws_iam_role" "notifier" {
  name               = "${var.name_prefix}notifier-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "notifier" {
  statement {
    sid       = "ConsumeNotify"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.notify.arn]
  }
  statement {
    sid       = "DeadLetterNotify"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.notify_dlq.arn]
  }
  dynamic "statement" {
    for_each = var.resolve_all_queue_urls ? [1] : []
    content {
      sid       = "ResolveQueueUrls"
      actions   = ["sqs:GetQueueUrl"]
      resources = [local.all_queues_arn]
    }
  }
  # A presigned URL carries the signer's permissions: the emailed links to
  # the output and the error report work because of this statement.
  statement {
    sid       = "PresignCompleted"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/*/output/completed/*"]
  }
  # A failed batch's email says whether its input was kept; the notifier
  # looks (HEAD) at input_archive/ to know.
  statement {
    sid       = "SeeArchive"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/input_archive/*"]
  }
  # A batch's chunks and parts go when it ends (retention.intermediates: 0s);
  # listing them needs s3:ListBucket.
  statement {
    sid       = "RemoveIntermediates"
    actions   = ["s3:DeleteObject"]
    resources = ["${aws_s3_bucket.this.arn}/*/to_process/*", "${aws_s3_bucket.this.arn}/*/output/parts/*", "${aws_s3_bucket.this.arn}/*/output/errors/*"]
  }
  statement {
    sid       = "ListIntermediates"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]
  }
  statement {
    sid       = "Batches"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.batches.arn]
  }
  # sluice_batches{state}: the unfinished batches are counted by a COUNT
  # query on the sparse index, the finished ones read from one item
  # (GetItem above); no Scan of the table's history.
  statement {
    sid       = "CountUnfinished"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.batches.arn}/index/unfinished"]
  }
  statement {
    sid       = "SendMail"
    actions   = ["ses:SendEmail"]
    resources = local.ses_identities
  }
}

resource "aws_iam_role_policy" "notifier" {
  name   = "notifier"
  role   = aws_iam_role.notifier.id
  policy = data.aws_iam_policy_document.notifier.json
}

# --- deliverer: deliveries -> partners' sinks ---------------------------------

resource "aws_iam_role" "deliverer" {
  name               = "${var.name_prefix}deliverer-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "deliverer" {
  statement {
    sid       = "ConsumeDeliveries"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.deliveries.arn]
  }
  statement {
    sid       = "DeadLetterDeliveries"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.deliveries_dlq.arn]
  }
  dynamic "statement" {
    for_each = var.resolve_all_queue_urls ? [1] : []
    content {
      sid       = "ResolveQueueUrls"
      actions   = ["sqs:GetQueueUrl"]
      resources = [local.all_queues_arn]
    }
  }
  # The manifest (the output's SHA-256), the webhook's presigned links, and
  # the source of the s3 sinks' server-side copies.
  statement {
    sid       = "ReadCompleted"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/*/output/completed/*"]
  }
  statement {
    sid       = "Batches"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.batches.arn]
  }
  # The partners' side, only what the variables name (an empty list makes
  # no statement: IAM refuses a statement without resources).
  dynamic "statement" {
    for_each = length(var.delivery_s3_object_arns) > 0 ? [1] : []
    content {
      sid       = "SinkS3Objects"
      actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
      resources = var.delivery_s3_object_arns
    }
  }
  dynamic "statement" {
    for_each = length(var.delivery_queue_arns) > 0 ? [1] : []
    content {
      sid       = "SinkQueues"
      actions   = ["sqs:SendMessage"]
      resources = var.delivery_queue_arns
    }
  }
  dynamic "statement" {
    for_each = length(var.delivery_role_arns) > 0 ? [1] : []
    content {
      sid       = "SinkRoles"
      actions   = ["sts:AssumeRole"]
      resources = var.delivery_role_arns
    }
  }
}

resource "aws_iam_role_policy" "deliverer" {
  name   = "deliverer"
  role   = aws_iam_role.deliverer.id
  policy = data.aws_iam_policy_document.deliverer.json
}

# The execution role reads the webhook secrets into the deliverer's
# environment (ECS "secrets"), only those var.delivery_secrets names.
data "aws_iam_policy_document" "execution_secrets" {
  statement {
    sid       = "DeliverySecrets"
    actions   = ["secretsmanager:GetSecretValue", "ssm:GetParameters"]
    resources = length(var.delivery_secrets) > 0 ? values(var.delivery_secrets) : ["arn:${local.partition}:secretsmanager:${var.region}:${local.account_id}:secret:none-configured"]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  count  = length(var.delivery_secrets) > 0 ? 1 : 0
  name   = "delivery-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets.json
}
