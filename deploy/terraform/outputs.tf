output "cluster_name" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "bucket" {
  description = "The bucket: upload .csv files under input/, reference CSVs under reference/."
  value       = aws_s3_bucket.this.bucket
}

output "queue_urls" {
  description = "The stage queues and their dead-letter queues."
  value = {
    ingest     = aws_sqs_queue.ingest.url
    ingest_dlq = aws_sqs_queue.ingest_dlq.url
    chunks     = aws_sqs_queue.chunks.url
    chunks_dlq = aws_sqs_queue.chunks_dlq.url
    merge      = aws_sqs_queue.merge.url
    merge_dlq  = aws_sqs_queue.merge_dlq.url
    notify     = aws_sqs_queue.notify.url
    notify_dlq = aws_sqs_queue.notify_dlq.url
  }
}

output "tables" {
  description = "The DynamoDB tables."
  value = {
    batches   = aws_dynamodb_table.batches.name
    rejects   = aws_dynamodb_table.rejects.name
    reference = aws_dynamodb_table.reference.name
  }
}

output "services" {
  description = "The ECS services."
  value = {
    splitter  = aws_ecs_service.splitter.name
    worker    = aws_ecs_service.worker.name
    merger    = aws_ecs_service.merger.name
    notifier  = aws_ecs_service.notifier.name
    deliverer = aws_ecs_service.deliverer.name
  }
}

output "task_role_arns" {
  description = "Each service's task role."
  value = {
    splitter  = aws_iam_role.splitter.arn
    worker    = aws_iam_role.worker.arn
    merger    = aws_iam_role.merger.arn
    notifier  = aws_iam_role.notifier.arn
    deliverer = aws_iam_role.deliverer.arn
  }
}

output "target_backlog_per_task" {
  description = "The target value of each service's backlog-per-task scaling policy."
  value       = local.target_backlog_per_task
}

output "env" {
  description = "SLUICE_* settings the services were given (for running `sluice provision` or the CLI against this stack)."
  value = {
    SLUICE_BUCKET       = aws_s3_bucket.this.bucket
    SLUICE_QUEUE_PREFIX = local.queue_prefix
    SLUICE_TABLE_PREFIX = local.table_prefix
  }
}
