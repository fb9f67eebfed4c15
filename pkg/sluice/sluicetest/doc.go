// Package sluicetest holds one conformance suite per port. Every adapter,
// local or AWS, runs the suite of the port it implements; an adapter is done
// when it passes. Durations are whole seconds because SQS counts visibility
// in seconds.
package sluicetest
