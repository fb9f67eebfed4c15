// Package sluice holds the domain of the batch pipeline: batches, chunks,
// rejected rows, the messages that chain the stages, and the ports (blob
// store, queue, ledger, reference catalog, mailer) that the stages need.
//
// Nothing here knows about AWS, SQLite or the file system; adapters in
// sibling packages implement the ports, and the conformance suites in
// package sluicetest say what every adapter must do.
package sluice
