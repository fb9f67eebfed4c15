package dynamoledger

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// ScanRangeDone implements sluice.Ledger as ChunkDone counts chunks: the
// number set "scanRanges" of the ranges counted and the counter "scanDone"
// change only through ADD in one conditional UpdateItem, so concurrent scan
// tasks never lose each other's counts, a redelivered range counts nothing,
// and exactly one call sees the count reach n. The range summaries
// themselves are objects in the bucket (pkg/pipeline), not attributes: 200
// of them would outgrow DynamoDB's 400 KB item.
//
// SetTotal removes the set (the stitch sets the total once every range is
// counted), so the chunks' reads of the batch item do not carry it; a late
// repeat after that counts nothing and does not add it back (totalAt is
// set), and scanDone, kept, still says the ranges are complete.
const scanRangesAttr = "scanRanges"

// scanRangesUpdate is the ScanRangeDone update: it adds range :n while the
// total is unknown.
const scanRangesUpdate = "ADD " + scanRangesAttr + " :r, scanDone :one SET updatedAt = :now"

func (l *Ledger) ScanRangeDone(ctx context.Context, id string, r, n int) (sluice.Completion, error) {
	if r < 0 || r >= sluice.MaxScanRanges || n > sluice.MaxScanRanges {
		// No retry makes the range fit: the message is not one fanOut sends.
		return sluice.Completion{}, sluice.Permanentf("dynamodb: batch %q: range %d of %d: a split scans at most %d ranges", id, r, n, sluice.MaxScanRanges)
	}
	out, err := l.db.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(l.db.tables.Batches),
		Key:                 l.key(id),
		UpdateExpression:    aws.String(scanRangesUpdate),
		ConditionExpression: aws.String("attribute_exists(id) AND attribute_not_exists(totalAt) AND NOT contains(" + scanRangesAttr + ", :n)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":r":   &types.AttributeValueMemberNS{Value: []string{strconv.Itoa(r)}},
			":n":   avN(int64(r)),
			":one": avN(1),
			":now": avS(time.Now().UTC().Format(timeFormat)),
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	})
	if isConditionFailed(err) {
		item, err := l.getItem(ctx, id) // ErrNotFound when there is no batch
		if err != nil {
			return sluice.Completion{}, err
		}
		done := int(getN(item, "scanDone"))
		return sluice.Completion{Done: done, Total: n, Complete: done >= n}, nil
	}
	if err != nil {
		return sluice.Completion{}, fmt.Errorf("dynamodb: scan range %d of batch %q: %w", r, id, err)
	}
	done := int(getN(out.Attributes, "scanDone"))
	return sluice.Completion{Counted: true, Done: done, Total: n, Complete: done >= n, Completed: done == n}, nil
}
