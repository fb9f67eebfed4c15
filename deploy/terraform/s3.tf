# The bucket: private, encrypted at rest, TLS only, and every .csv under
# input/ (and reference/, for new reference versions) announced to the ingest queue.

resource "aws_s3_bucket" "this" {
  bucket        = var.bucket_name
  force_destroy = !var.protect_data
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# SSE-S3: presigned GETs and the services need no KMS permissions.
resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Uploads a service could not complete or abort (a task killed mid-part)
# are otherwise billed forever. The other rules follow var.retention: an
# input still under input/ after orphaned_input_days was never split (its
# batch moves it to input_archive/), archives and intermediates under a
# fixed prefix expire when their days are set.
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  dynamic "rule" {
    for_each = coalesce(var.retention.orphaned_input_days, 0) > 0 ? [1] : []
    content {
      id     = "expire-orphaned-inputs"
      status = "Enabled"
      filter {
        prefix = "input/"
      }
      expiration {
        days = var.retention.orphaned_input_days
      }
    }
  }

  dynamic "rule" {
    for_each = coalesce(var.retention.archive_days, 0) > 0 ? [1] : []
    content {
      id     = "expire-archived-inputs"
      status = "Enabled"
      filter {
        prefix = "input_archive/"
      }
      expiration {
        days = var.retention.archive_days
      }
    }
  }

  dynamic "rule" {
    for_each = toset(var.retention.intermediate_prefixes)
    content {
      id     = "expire-intermediates-${replace(rule.value, "/", "-")}"
      status = "Enabled"
      filter {
        prefix = rule.value
      }
      expiration {
        days = var.retention.intermediate_days
      }
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json
  # A bucket policy put while the public access block is being applied can
  # be refused; order them.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# s3:ObjectCreated:* and not :Put, since a multipart upload (any large
# file) fires CompleteMultipartUpload, never Put. S3 checks that it may send
# to the queue when this is created, hence the depends_on.
resource "aws_s3_bucket_notification" "this" {
  bucket = aws_s3_bucket.this.id

  queue {
    id        = "sluice-ingest"
    queue_arn = aws_sqs_queue.ingest.arn
    events    = ["s3:ObjectCreated:*"]
    # No suffix: .csv, .csv.gz, .csv.zst and .xlsx are all inputs (the
    # split knows a file by its first bytes), and a file that is none of
    # them fails its batch with a reason instead of being ignored.
    filter_prefix = "input/"
  }

  # A reference CSV becomes the new reference version (the splitter loads it).
  queue {
    id            = "sluice-reference"
    queue_arn     = aws_sqs_queue.ingest.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = "reference/"
    filter_suffix = ".csv"
  }

  depends_on = [aws_sqs_queue_policy.ingest]
}
