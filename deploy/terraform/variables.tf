# --- Where ---------------------------------------------------------------

variable "region" {
  description = "AWS region for every resource."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of queue, table, role, cluster and log group names; the services get it as SLUICE_QUEUE_PREFIX and SLUICE_TABLE_PREFIX."
  type        = string
  default     = "sluice-"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,40}$", var.name_prefix))
    error_message = "name_prefix: letters, digits, - and _ only (SQS and DynamoDB names), at most 40 characters."
  }
}

variable "bucket_name" {
  description = "Name of the bucket to create: input/ is watched, outputs go under <batch>/."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# --- Network (made elsewhere, passed in) ---------------------------------

variable "subnet_ids" {
  description = "Subnets the tasks run in. Private subnets need a NAT gateway or VPC endpoints for S3, SQS, DynamoDB, SES, ECR, CloudWatch Logs and ECS."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the tasks. They need only outbound HTTPS; allow inbound 9090 from your Prometheus if it scrapes /metrics."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give tasks a public IP (public subnets without NAT)."
  type        = bool
  default     = false
}

# --- The image and the services ------------------------------------------

variable "image" {
  description = "The Sluice image (see the Dockerfile): one image, the service is chosen by the command."
  type        = string
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64; the image must be built for it."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "stop_timeout" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL (Fargate allows at most 120). SLUICE_DRAIN is drain_margin seconds less, so in-flight work ends, or is released to the queue, before the kill."
  type        = number
  default     = 30

  validation {
    condition     = var.stop_timeout >= 10 && var.stop_timeout <= 120
    error_message = "stop_timeout must be between 10 and 120 seconds (the Fargate maximum)."
  }
}

variable "drain_margin" {
  description = "Seconds between the end of SLUICE_DRAIN and the ECS stop timeout, for closing down after the drain."
  type        = number
  default     = 5

  validation {
    condition     = var.drain_margin >= 1 && var.drain_margin <= 9
    error_message = "drain_margin must be between 1 and 9 seconds."
  }
}

variable "max_receive_count" {
  description = "Receives before SQS moves a message to its queue's dead-letter queue (sluice provision uses the same default)."
  type        = number
  default     = 5
}

variable "log_level" {
  description = "SLUICE_LOG_LEVEL of every service: debug, info, warn or error."
  type        = string
  default     = "info"
}

variable "log_retention_days" {
  description = "Retention of the services' CloudWatch log groups."
  type        = number
  default     = 30
}

variable "protect_data" {
  description = "Deletion protection on the tables, and no force_destroy on the bucket. Set false only for throwaway stacks."
  type        = bool
  default     = true
}

# --- Retention (S3 lifecycle) ---------------------------------------------
#
# Intermediates (<batch>/to_process/, <batch>/output/parts/ and errors/)
# start with the batch ID, which an S3 lifecycle prefix cannot wildcard:
# the pipeline removes them when a batch ends, and these rules are the
# backstop for what it cannot reach. Each prefix is a variable, so a key
# layout that moves intermediates under a fixed prefix only changes values.

variable "retention" {
  description = "Days before S3 expires objects: under intermediate_prefixes (fixed prefixes holding intermediates, if a key layout has them; none by default), orphaned inputs under input/ (a file never split; 30), archives under input_archive/ (unset: kept). 0 turns a rule off."
  type = object({
    intermediate_prefixes = optional(list(string), [])
    intermediate_days     = optional(number, 7)
    orphaned_input_days   = optional(number, 30)
    archive_days          = optional(number)
  })
  default = {}
}

# --- Mail (notifier) -----------------------------------------------------

variable "mail_from" {
  description = "SLUICE_MAIL_FROM: the sender, a verified SES identity. Empty: the pipeline configuration's."
  type        = string
  default     = ""
}

variable "mail_to" {
  description = "SLUICE_MAIL_TO: recipients. Empty: the pipeline configuration's."
  type        = list(string)
  default     = []
}

variable "ses_identities" {
  description = "SES identities (domains or addresses) the notifier may send as. In the SES sandbox, add the recipients too: SES checks them as well."
  type        = list(string)

  validation {
    condition     = length(var.ses_identities) > 0
    error_message = "ses_identities: name at least the sender's verified identity (a domain or an address)."
  }
}

variable "link_ttl" {
  description = "SLUICE_LINK_TTL: lifetime of the emailed presigned links (Go duration, at most 168h; task-role credentials bound it further)."
  type        = string
  default     = "12h"
}

# pkg/service.Build resolves only the queues its stage uses (its own queue,
# that queue's DLQ and the queues it sends to), so no role needs more. This
# switch grants one read-only action, GetQueueUrl, on PREFIX* queues for
# other tools run under a task role; it allows no message access.
variable "resolve_all_queue_urls" {
  description = "Grant sqs:GetQueueUrl on every PREFIX* queue to every service. The services resolve only the queues they use, so this is off; turn it on for tools that look up others."
  type        = bool
  default     = false
}

# --- Sizing and scaling, per service --------------------------------------
#
# Each service scales on its own queue: backlog per task = (visible +
# in-flight messages) / running tasks, tracked at target_backlog_per_task.
# By default that target is concurrency * target_latency_seconds /
# seconds_per_message: how many messages one task can hold while none waits
# longer than the target latency (pkg/autoscale's policy, per task). Measure
# seconds_per_message from sluice_handler_duration_seconds (sum / count) of
# the stage and set it here.
#
# min_capacity 0 is allowed but target tracking cannot wake a service from
# zero tasks while the backlog stays below the target (see the README).

variable "splitter" {
  description = "Splitter task size and scaling (reads the ingest queue)."
  type = object({
    cpu                     = optional(number, 512)
    memory                  = optional(number, 1024)
    concurrency             = optional(number, 1)
    min_capacity            = optional(number, 1)
    max_capacity            = optional(number, 4)
    target_latency_seconds  = optional(number, 120)
    seconds_per_message     = optional(number, 30)
    target_backlog_per_task = optional(number)
    scale_in_cooldown       = optional(number, 300)
    scale_out_cooldown      = optional(number, 60)
  })
  default = {}

  validation {
    condition     = var.splitter.min_capacity >= 0 && var.splitter.max_capacity >= max(var.splitter.min_capacity, 1)
    error_message = "splitter: need 0 <= min_capacity <= max_capacity and max_capacity >= 1."
  }
}

variable "worker" {
  description = "Worker task size and scaling (reads the chunks queue)."
  type = object({
    cpu                     = optional(number, 1024)
    memory                  = optional(number, 2048)
    concurrency             = optional(number, 2)
    min_capacity            = optional(number, 1)
    max_capacity            = optional(number, 20)
    target_latency_seconds  = optional(number, 60)
    seconds_per_message     = optional(number, 5)
    target_backlog_per_task = optional(number)
    scale_in_cooldown       = optional(number, 300)
    scale_out_cooldown      = optional(number, 60)
  })
  default = {}

  validation {
    condition     = var.worker.min_capacity >= 0 && var.worker.max_capacity >= max(var.worker.min_capacity, 1)
    error_message = "worker: need 0 <= min_capacity <= max_capacity and max_capacity >= 1."
  }
}

variable "merger" {
  description = "Merger task size and scaling (reads the merge queue)."
  type = object({
    cpu                     = optional(number, 512)
    memory                  = optional(number, 1024)
    concurrency             = optional(number, 1)
    min_capacity            = optional(number, 1)
    max_capacity            = optional(number, 4)
    target_latency_seconds  = optional(number, 120)
    seconds_per_message     = optional(number, 30)
    target_backlog_per_task = optional(number)
    scale_in_cooldown       = optional(number, 300)
    scale_out_cooldown      = optional(number, 60)
  })
  default = {}

  validation {
    condition     = var.merger.min_capacity >= 0 && var.merger.max_capacity >= max(var.merger.min_capacity, 1)
    error_message = "merger: need 0 <= min_capacity <= max_capacity and max_capacity >= 1."
  }
}

variable "notifier" {
  description = "Notifier task size and scaling (reads the notify queue)."
  type = object({
    cpu                     = optional(number, 256)
    memory                  = optional(number, 512)
    concurrency             = optional(number, 1)
    min_capacity            = optional(number, 1)
    max_capacity            = optional(number, 2)
    target_latency_seconds  = optional(number, 60)
    seconds_per_message     = optional(number, 2)
    target_backlog_per_task = optional(number)
    scale_in_cooldown       = optional(number, 300)
    scale_out_cooldown      = optional(number, 60)
  })
  default = {}

  validation {
    condition     = var.notifier.min_capacity >= 0 && var.notifier.max_capacity >= max(var.notifier.min_capacity, 1)
    error_message = "notifier: need 0 <= min_capacity <= max_capacity and max_capacity >= 1."
  }
}

variable "deliverer" {
  description = "Deliverer task size and scaling (reads the deliveries queue)."
  type = object({
    cpu                     = optional(number, 256)
    memory                  = optional(number, 512)
    concurrency             = optional(number, 4)
    min_capacity            = optional(number, 1)
    max_capacity            = optional(number, 2)
    target_latency_seconds  = optional(number, 60)
    seconds_per_message     = optional(number, 2)
    target_backlog_per_task = optional(number)
    scale_in_cooldown       = optional(number, 300)
    scale_out_cooldown      = optional(number, 60)
  })
  default = {}

  validation {
    condition     = var.deliverer.min_capacity >= 0 && var.deliverer.max_capacity >= max(var.deliverer.min_capacity, 1)
    error_message = "deliverer: need 0 <= min_capacity <= max_capacity and max_capacity >= 1."
  }
}

# --- Delivery to partners (deliverer) ----------------------------------------
# The pipeline configuration's deliver: sinks name partners' resources; the
# deliverer's role may reach exactly these and nothing else.

variable "delivery_s3_object_arns" {
  description = "Objects the s3 sinks write (CopyObject, multipart), e.g. [\"arn:aws:s3:::partner-bucket/in/sluice/*\"]. Not needed for a sink with roleArn: the assumed role's permissions apply then."
  type        = list(string)
  default     = []
}

variable "delivery_queue_arns" {
  description = "Partners' SQS queues the sqs sinks send completion events to (without roleArn)."
  type        = list(string)
  default     = []
}

variable "delivery_role_arns" {
  description = "Roles the s3 and sqs sinks assume (their roleArn), typically in a partner's account."
  type        = list(string)
  default     = []
}

variable "delivery_secrets" {
  description = "The webhook sinks' HMAC secrets: environment variable (secretEnv) => Secrets Manager or SSM parameter ARN, given to the deliverer only."
  type        = map(string)
  default     = {}
}
