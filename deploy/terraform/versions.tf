terraform {
  # optional() object attributes with defaults (variables.tf) need 1.3;
  # tests/plan.tftest.hcl needs mock_provider (1.7) and override_during
  # (1.11), so 1.11 is the oldest release that can run the module's tests.
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # customized_metric_specification { metrics { ... } } (metric math in
      # target tracking) arrived in 5.x; nothing here is specific to 5 or 6.
      version = ">= 5.50, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Application = "sluice" }, var.tags)
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
}
