// Command worker is Sluice's worker service: the worker stage over SQS, S3,
// DynamoDB and SES, configured by SLUICE_* environment variables (see the
// README). All of it lives in package service.
package main

import "github.com/sluicehq/sluice/pkg/service"

func main() { service.Main("worker") }
