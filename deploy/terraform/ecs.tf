# The cluster and the five Fargate services. One image serves all five; the
# command picks the service (see the Dockerfile).

resource "aws_ecs_cluster" "this" {
  name = trimsuffix(var.name_prefix, "-")

  # ECS/ContainerInsights RunningTaskCount is the denominator of every
  # service's backlog-per-task scaling metric (autoscaling.tf).
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "service" {
  for_each          = toset(["splitter", "worker", "merger", "notifier", "deliverer"])
  name              = "/ecs/${var.name_prefix}${each.key}"
  retention_in_days = var.log_retention_days
}

locals {
  services = {
    splitter  = var.splitter
    worker    = var.worker
    merger    = var.merger
    notifier  = var.notifier
    deliverer = var.deliverer
  }

  # The queue each service reads; its visibility timeout is the service's
  # SLUICE_VISIBILITY, so the two cannot drift apart.
  input_queue = {
    splitter  = aws_sqs_queue.ingest
    worker    = aws_sqs_queue.chunks
    merger    = aws_sqs_queue.merge
    notifier  = aws_sqs_queue.notify
    deliverer = aws_sqs_queue.deliveries
  }

  common_env = {
    AWS_REGION          = var.region
    SLUICE_BUCKET       = aws_s3_bucket.this.bucket
    SLUICE_QUEUE_PREFIX = local.queue_prefix
    SLUICE_TABLE_PREFIX = local.table_prefix
    SLUICE_HTTP_ADDR    = ":9090"
    SLUICE_LOG_LEVEL    = var.log_level
    # Drain a few seconds inside the stop timeout: SIGTERM, stop receiving,
    # finish or release what is in flight, exit before ECS sends SIGKILL.
    SLUICE_DRAIN = "${var.stop_timeout - var.drain_margin}s"
  }

  # Only the notifier mails; empty settings fall back to the pipeline
  # configuration's, so they are left out rather than set empty.
  notifier_env = merge(
    { SLUICE_LINK_TTL = var.link_ttl },
    var.mail_from == "" ? {} : { SLUICE_MAIL_FROM = var.mail_from },
    length(var.mail_to) == 0 ? {} : { SLUICE_MAIL_TO = join(",", var.mail_to) },
  )

  container = {
    for stage, s in local.services : stage => {
      name      = stage
      image     = var.image
      command   = [stage]
      essential = true
      # SIGTERM, then this many seconds before SIGKILL (Fargate: at most 120).
      stopTimeout            = var.stop_timeout
      readonlyRootFilesystem = true
      portMappings = [{
        name          = "metrics"
        containerPort = 9090
        protocol      = "tcp"
      }]
      environment = [
        for k, v in merge(
          local.common_env,
          {
            SLUICE_CONCURRENCY = tostring(s.concurrency)
            SLUICE_VISIBILITY  = "${local.input_queue[stage].visibility_timeout_seconds}s"
          },
          stage == "notifier" ? local.notifier_env : {},
        ) : { name = k, value = v }
      ]
      # The webhook sinks' HMAC secrets (secretEnv), from Secrets Manager
      # or SSM, for the deliverer alone.
      secrets = stage == "deliverer" ? [for k, arn in var.delivery_secrets : { name = k, valueFrom = arn }] : []
      # The image has no shell, so no container healthCheck: /healthz on
      # :9090 is for scrapers and load balancers.
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.service[stage].name
          awslogs-region        = var.region
          awslogs-stream-prefix = stage
          mode                  = "non-blocking"
          max-buffer-size       = "4m"
        }
      }
    }
  }
}

# --- Task definitions ---------------------------------------------------------

resource "aws_ecs_task_definition" "splitter" {
  family                   = "${var.name_prefix}splitter"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.splitter.cpu
  memory                   = var.splitter.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.splitter.arn
  container_definitions    = jsonencode([local.container["splitter"]])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.name_prefix}worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker.cpu
  memory                   = var.worker.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.worker.arn
  container_definitions    = jsonencode([local.container["worker"]])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }
}

resource "aws_ecs_task_definition" "merger" {
  family                   = "${var.name_prefix}merger"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.merger.cpu
  memory                   = var.merger.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.merger.arn
  container_definitions    = jsonencode([local.container["merger"]])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }
}

resource "aws_ecs_task_definition" "notifier" {
  family                   = "${var.name_prefix}notifier"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.notifier.cpu
  memory                   = var.notifier.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.notifier.arn
  container_definitions    = jsonencode([local.container["notifier"]])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }
}

resource "aws_ecs_task_definition" "deliverer" {
  family                   = "${var.name_prefix}deliverer"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.deliverer.cpu
  memory                   = var.deliverer.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.deliverer.arn
  container_definitions    = jsonencode([local.container["deliverer"]])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }
}

# --- Services -------------------------------------------------------------------
#
# desired_count is only the starting point: Application Auto Scaling owns it
# afterwards (autoscaling.tf), so Terraform ignores its drift.

resource "aws_ecs_service" "splitter" {
  name                               = "splitter"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.splitter.arn
  launch_type                        = "FARGATE"
  desired_count                      = var.splitter.min_capacity
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    ignore_changes = [desired_count]
  }
}

resource "aws_ecs_service" "worker" {
  name                               = "worker"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.worker.arn
  launch_type                        = "FARGATE"
  desired_count                      = var.worker.min_capacity
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    ignore_changes = [desired_count]
  }
}

resource "aws_ecs_service" "merger" {
  name                               = "merger"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.merger.arn
  launch_type                        = "FARGATE"
  desired_count                      = var.merger.min_capacity
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    ignore_changes = [desired_count]
  }
}

resource "aws_ecs_service" "notifier" {
  name                               = "notifier"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.notifier.arn
  launch_type                        = "FARGATE"
  desired_count                      = var.notifier.min_capacity
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    ignore_changes = [desired_count]
  }
}

resource "aws_ecs_service" "deliverer" {
  name                               = "deliverer"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.deliverer.arn
  launch_type                        = "FARGATE"
  desired_count                      = var.deliverer.min_capacity
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    ignore_changes = [desired_count]
  }
}
