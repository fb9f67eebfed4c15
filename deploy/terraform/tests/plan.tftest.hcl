# `terraform test` plans the module against a mocked AWS provider: no
# account and no credentials, only the provider schema (pkg/deploytest runs
# it when terraform and the provider are at hand). It checks what the HCL
# parse in pkg/deploytest cannot: the values the expressions produce.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  # The roles validate their policies as JSON objects.
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
}

variables {
  region             = "eu-west-1"
  bucket_name        = "sluice-test-bucket"
  subnet_ids         = ["subnet-1"]
  security_group_ids = ["sg-1"]
  image              = "sluice:test"
  ses_identities     = ["example.com"]
  mail_to            = ["a@example.com", "b@example.com"]
}

run "defaults" {
  command = plan

  assert {
    condition     = output.target_backlog_per_task == { splitter = 4, worker = 24, merger = 4, notifier = 30, deliverer = 120 }
    error_message = "target backlog per task must be concurrency * target latency / seconds per message"
  }

  assert {
    condition = alltrue([for td in [aws_ecs_task_definition.splitter, aws_ecs_task_definition.worker, aws_ecs_task_definition.merger, aws_ecs_task_definition.notifier, aws_ecs_task_definition.deliverer] :
      jsondecode(td.container_definitions)[0].stopTimeout == 30 &&
      contains(jsondecode(td.container_definitions)[0].environment, { name = "SLUICE_DRAIN", value = "25s" }) &&
      jsondecode(td.container_definitions)[0].portMappings[0].containerPort == 9090 &&
      jsondecode(td.container_definitions)[0].logConfiguration.logDriver == "awslogs"
    ])
    error_message = "every container: stopTimeout 30, SLUICE_DRAIN 25s, port 9090, awslogs"
  }

  assert {
    condition = [for td in [aws_ecs_task_definition.splitter, aws_ecs_task_definition.worker, aws_ecs_task_definition.merger, aws_ecs_task_definition.notifier, aws_ecs_task_definition.deliverer] :
    one([for e in jsondecode(td.container_definitions)[0].environment : e.value if e.name == "SLUICE_VISIBILITY"])] == ["300s", "120s", "300s", "60s", "120s"]
    error_message = "SLUICE_VISIBILITY must follow each input queue's visibility timeout"
  }

  assert {
    condition = [for td in [aws_ecs_task_definition.splitter, aws_ecs_task_definition.worker, aws_ecs_task_definition.merger, aws_ecs_task_definition.notifier, aws_ecs_task_definition.deliverer] :
    jsondecode(td.container_definitions)[0].command] == [["splitter"], ["worker"], ["merger"], ["notifier"], ["deliverer"]]
    error_message = "each task definition must run its own service"
  }

  assert {
    condition = (
      contains(jsondecode(aws_ecs_task_definition.notifier.container_definitions)[0].environment, { name = "SLUICE_MAIL_TO", value = "a@example.com,b@example.com" }) &&
      !contains([for e in jsondecode(aws_ecs_task_definition.notifier.container_definitions)[0].environment : e.name], "SLUICE_MAIL_FROM") &&
      !contains([for e in jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment : e.name], "SLUICE_MAIL_TO")
    )
    error_message = "mail settings go to the notifier only, and only when set"
  }

  assert {
    condition = alltrue([for e in jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment :
    e.value == "sluice-" if contains(["SLUICE_QUEUE_PREFIX", "SLUICE_TABLE_PREFIX"], e.name)])
    error_message = "the prefixes the services get must be the ones the queues and tables were named with"
  }

  assert {
    condition = [for t in [aws_appautoscaling_target.splitter, aws_appautoscaling_target.worker, aws_appautoscaling_target.merger, aws_appautoscaling_target.notifier] :
    t.resource_id] == ["service/sluice/splitter", "service/sluice/worker", "service/sluice/merger", "service/sluice/notifier"]
    error_message = "each scalable target must be its own ECS service"
  }

  assert {
    condition = [for p in [aws_appautoscaling_policy.splitter, aws_appautoscaling_policy.worker, aws_appautoscaling_policy.merger, aws_appautoscaling_policy.notifier] :
      join(",", sort(distinct(flatten([for m in p.target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metrics : [
        for ms in m.metric_stat : [for mt in ms.metric : [for d in mt.dimensions : d.value if d.name == "QueueName"]]
    ]]))))] == ["sluice-ingest", "sluice-chunks", "sluice-merge", "sluice-notify"]
    error_message = "each scaling policy must read its own queue and no other"
  }

  assert {
    condition     = one(aws_ecs_cluster.this.setting).value == "enabled"
    error_message = "Container Insights must be on"
  }
}

# A queue's ARN is known only after it exists: give the DLQs theirs at plan.
run "dead_letter_queues" {
  command = plan

  override_resource {
    target          = aws_sqs_queue.ingest_dlq
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:123456789012:sluice-ingest-dlq" }
  }
  override_resource {
    target          = aws_sqs_queue.chunks_dlq
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:123456789012:sluice-chunks-dlq" }
  }
  override_resource {
    target          = aws_sqs_queue.merge_dlq
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:123456789012:sluice-merge-dlq" }
  }
  override_resource {
    target          = aws_sqs_queue.notify_dlq
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:123456789012:sluice-notify-dlq" }
  }

  assert {
    condition = [for q in [aws_sqs_queue.ingest, aws_sqs_queue.chunks, aws_sqs_queue.merge, aws_sqs_queue.notify] : jsondecode(q.redrive_policy)] == [
      for n in ["ingest", "chunks", "merge", "notify"] : { deadLetterTargetArn = "arn:aws:sqs:eu-west-1:123456789012:sluice-${n}-dlq", maxReceiveCount = 5 }
    ]
    error_message = "each queue must dead-letter to its own DLQ after 5 receives"
  }
}

run "stop_timeout_capped" {
  command = plan

  variables {
    stop_timeout = 121
  }

  expect_failures = [var.stop_timeout]
}

run "overrides" {
  command = plan

  variables {
    stop_timeout = 120
    mail_from    = "sluice@example.com"
    worker       = { target_backlog_per_task = 7, max_capacity = 50 }
  }

  assert {
    condition     = output.target_backlog_per_task.worker == 7 && aws_appautoscaling_target.worker.max_capacity == 50 && aws_appautoscaling_target.worker.min_capacity == 1
    error_message = "an explicit target and one changed field must leave the other defaults alone"
  }

  assert {
    condition = (
      contains(jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment, { name = "SLUICE_DRAIN", value = "115s" }) &&
      contains(jsondecode(aws_ecs_task_definition.notifier.container_definitions)[0].environment, { name = "SLUICE_MAIL_FROM", value = "sluice@example.com" })
    )
    error_message = "SLUICE_DRAIN follows stop_timeout; SLUICE_MAIL_FROM is set when given"
  }
}

run "retention" {
  command = plan

  assert {
    condition = (
      [for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.id] == ["abort-incomplete-multipart-uploads", "expire-orphaned-inputs"] &&
      one([for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.expiration[0].days if r.id == "expire-orphaned-inputs"]) == 30
    )
    error_message = "by default: abort multipart uploads, expire inputs never split after 30 days, keep archives"
  }

  assert {
    condition = (
      aws_dynamodb_table.batches.ttl[0].attribute_name == "expiresAt" && aws_dynamodb_table.batches.ttl[0].enabled &&
      aws_dynamodb_table.rejects.ttl[0].attribute_name == "expiresAt" && aws_dynamodb_table.rejects.ttl[0].enabled &&
      aws_dynamodb_table.rejects.point_in_time_recovery[0].enabled
    )
    error_message = "batches and rejects expire by expiresAt; rejects has point-in-time recovery"
  }
}

run "retention_overrides" {
  command = plan

  variables {
    retention = { archive_days = 90, intermediate_prefixes = ["tmp/"], orphaned_input_days = 0 }
  }

  assert {
    condition = (
      sort([for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.id]) == sort(["abort-incomplete-multipart-uploads", "expire-archived-inputs", "expire-intermediates-tmp-"]) &&
      one([for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.expiration[0].days if r.id == "expire-intermediates-tmp-"]) == 7
    )
    error_message = "archive_days and intermediate_prefixes add rules; orphaned_input_days = 0 drops that rule"
  }
}
