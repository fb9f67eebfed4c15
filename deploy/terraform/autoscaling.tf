# Every service scales on its own queue by target tracking on
#
#   backlog per task = (visible + in-flight messages) / running tasks
#
# computed by CloudWatch metric math, with the target the acceptable backlog
# per task: concurrency * target latency / average seconds per message, the
# formula of pkg/autoscale's policy (which sizes the embedded pipeline's
# pools). Running tasks come from Container Insights (enabled on the
# cluster); a service with no running task divides by 1, so a backlog above
# the target still reads as "scale out".
#
# pkg/deploytest parses this file: each service's policy must name its own
# queue, and only that one.

locals {
  target_backlog_per_task = {
    for stage, s in local.services : stage => (
      s.target_backlog_per_task != null
      ? s.target_backlog_per_task
      : max(1, s.concurrency * s.target_latency_seconds / s.seconds_per_message)
    )
  }

  # m1 visible, m3 in flight (SQS), m2 running tasks (Container Insights).
  # FILL: an idle queue or service stops publishing; read that as zero
  # rather than "insufficient data", which blocks scale-in.
  backlog_per_task = "(FILL(m1, 0) + FILL(m3, 0)) / IF(FILL(m2, 0) > 1, FILL(m2, 0), 1)"
}

# --- splitter: ingest ---------------------------------------------------------

resource "aws_appautoscaling_target" "splitter" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.splitter.name}"
  min_capacity       = var.splitter.min_capacity
  max_capacity       = var.splitter.max_capacity
}

resource "aws_appautoscaling_policy" "splitter" {
  name               = "${var.name_prefix}splitter-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.splitter.service_namespace
  scalable_dimension = aws_appautoscaling_target.splitter.scalable_dimension
  resource_id        = aws_appautoscaling_target.splitter.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = local.target_backlog_per_task["splitter"]
    scale_in_cooldown  = var.splitter.scale_in_cooldown
    scale_out_cooldown = var.splitter.scale_out_cooldown

    customized_metric_specification {
      metrics {
        id          = "m1"
        label       = "visible messages"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.ingest.name
            }
          }
        }
      }
      metrics {
        id          = "m3"
        label       = "in-flight messages"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesNotVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.ingest.name
            }
          }
        }
      }
      metrics {
        id          = "m2"
        label       = "running tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.splitter.name
            }
          }
        }
      }
      metrics {
        id          = "backlog"
        label       = "backlog per task"
        expression  = local.backlog_per_task
        return_data = true
      }
    }
  }
}

# --- worker: chunks -------------------------------------------------------------

resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.worker.name}"
  min_capacity       = var.worker.min_capacity
  max_capacity       = var.worker.max_capacity
}

# Scale-in picks tasks the worker has not protected: a worker holding
# messages sets ECS task scale-in protection (see iam.tf and the README).
resource "aws_appautoscaling_policy" "worker" {
  name               = "${var.name_prefix}worker-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  resource_id        = aws_appautoscaling_target.worker.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = local.target_backlog_per_task["worker"]
    scale_in_cooldown  = var.worker.scale_in_cooldown
    scale_out_cooldown = var.worker.scale_out_cooldown

    customized_metric_specification {
      metrics {
        id          = "m1"
        label       = "visible messages"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.chunks.name
            }
          }
        }
      }
      metrics {
        id          = "m3"
        label       = "in-flight messages"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesNotVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.chunks.name
            }
          }
        }
      }
      metrics {
        id          = "m2"
        label       = "running tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.worker.name
            }
          }
        }
      }
      metrics {
        id          = "backlog"
        label       = "backlog per task"
        expression  = local.backlog_per_task
        return_data = true
      }
    }
  }
}

# --- merger: merge --------------------------------------------------------------

resource "aws_appautoscaling_target" "merger" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.merger.name}"
  min_capacity       = var.merger.min_capacity
  max_capacity       = var.merger.max_capacity
}

resource "aws_appautoscaling_policy" "merger" {
  name               = "${var.name_prefix}merger-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.merger.service_namespace
  scalable_dimension = aws_appautoscaling_target.merger.scalable_dimension
  resource_id        = aws_appautoscaling_target.merger.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = local.target_backlog_per_task["merger"]
    scale_in_cooldown  = var.merger.scale_in_cooldown
    scale_out_cooldown = var.merger.scale_out_cooldown

    customized_metric_specification {
      metrics {
        id          = "m1"
        label       = "visible messages"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.merge.name
            }
          }
        }
      }
      metrics {
        id          = "m3"
        label       = "in-flight messages"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesNotVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.merge.name
            }
          }
        }
      }
      metrics {
        id          = "m2"
        label       = "running tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.merger.name
            }
          }
        }
      }
      metrics {
        id          = "backlog"
        label       = "backlog per task"
        expression  = local.backlog_per_task
        return_data = true
      }
    }
  }
}

# --- notifier: notify -----------------------------------------------------------

resource "aws_appautoscaling_target" "notifier" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.notifier.name}"
  min_capacity       = var.notifier.min_capacity
  max_capacity       = var.notifier.max_capacity
}

resource "aws_appautoscaling_policy" "notifier" {
  name               = "${var.name_prefix}notifier-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.notifier.service_namespace
  scalable_dimension = aws_appautoscaling_target.notifier.scalable_dimension
  resource_id        = aws_appautoscaling_target.notifier.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = local.target_backlog_per_task["notifier"]
    scale_in_cooldown  = var.notifier.scale_in_cooldown
    scale_out_cooldown = var.notifier.scale_out_cooldown

    customized_metric_specification {
      metrics {
        id          = "m1"
        label       = "visible messages"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.notify.name
            }
          }
        }
      }
      metrics {
        id          = "m3"
        label       = "in-flight messages"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesNotVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.notify.name
            }
          }
        }
      }
      metrics {
        id          = "m2"
        label       = "running tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.notifier.name
            }
          }
        }
      }
      metrics {
        id          = "backlog"
        label       = "backlog per task"
        expression  = local.backlog_per_task
        return_data = true
      }
    }
  }
}

# --- deliverer: deliveries -----------------------------------------------------------

resource "aws_appautoscaling_target" "deliverer" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.deliverer.name}"
  min_capacity       = var.deliverer.min_capacity
  max_capacity       = var.deliverer.max_capacity
}

resource "aws_appautoscaling_policy" "deliverer" {
  name               = "${var.name_prefix}deliverer-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.deliverer.service_namespace
  scalable_dimension = aws_appautoscaling_target.deliverer.scalable_dimension
  resource_id        = aws_appautoscaling_target.deliverer.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = local.target_backlog_per_task["deliverer"]
    scale_in_cooldown  = var.deliverer.scale_in_cooldown
    scale_out_cooldown = var.deliverer.scale_out_cooldown

    customized_metric_specification {
      metrics {
        id          = "m1"
        label       = "visible messages"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.deliveries.name
            }
          }
        }
      }
      metrics {
        id          = "m3"
        label       = "in-flight messages"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesNotVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.deliveries.name
            }
          }
        }
      }
      metrics {
        id          = "m2"
        label       = "running tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.deliverer.name
            }
          }
        }
      }
      metrics {
        id          = "backlog"
        label       = "backlog per task"
        expression  = local.backlog_per_task
        return_data = true
      }
    }
  }
}
