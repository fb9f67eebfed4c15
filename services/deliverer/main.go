// Command deliverer is Sluice's deliverer service: the deliver stage over SQS,
// S3 and DynamoDB, delivering each finished batch to the feed's sinks (a
// signed webhook, a copy to another bucket, an event on another team's
// queue), configured by SLUICE_* environment variables and the pipeline
// configuration's deliver: lists (see the README). All of it lives in
// package service.
package main

import "github.com/sluicehq/sluice/pkg/service"

func main() { service.Main("deliverer") }
