# The three tables, keyed as pkg/dynamoledger CreateTables makes them.

locals {
  # SLUICE_TABLE_PREFIX, derived from a created table (see queue_prefix).
  table_prefix = trimsuffix(aws_dynamodb_table.batches.name, "batches")
}

resource "aws_dynamodb_table" "batches" {
  name                        = "${var.name_prefix}batches"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = var.protect_data

  attribute {
    name = "id"
    type = "S"
  }

  # Only unfinished batches carry openState, so this sparse index holds
  # the batches in flight: the notifier counts them by state (Query,
  # Select COUNT) instead of scanning the table's whole history.
  attribute {
    name = "openState"
    type = "S"
  }

  global_secondary_index {
    name            = "unfinished"
    hash_key        = "openState"
    projection_type = "KEYS_ONLY"
  }

  # Items carry expiresAt (epoch seconds) when the pipeline configuration
  # sets retention.records; without it they are kept.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.protect_data
  }
}

resource "aws_dynamodb_table" "rejects" {
  name                        = "${var.name_prefix}rejects"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "batchId"
  range_key                   = "line"
  deletion_protection_enabled = var.protect_data

  attribute {
    name = "batchId"
    type = "S"
  }

  attribute {
    name = "line"
    type = "N"
  }

  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.protect_data
  }
}

resource "aws_dynamodb_table" "reference" {
  name                        = "${var.name_prefix}reference"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  deletion_protection_enabled = var.protect_data

  attribute {
    name = "pk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = var.protect_data
  }
}
