package dynamoledger

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// A batch's deliveries are one map attribute of its item, "deliveries",
// keyed by sink name: {type, state, attempts, ord, reason?, at?}. Each
// change is one UpdateItem on the sink's own path, conditional on the
// sink's state, so recording an outcome twice changes nothing and a reset
// never races a record. "ord" keeps the configuration order, which a map
// does not.
const deliveriesAttr = "deliveries"

func deliveryAV(i int, d sluice.Delivery) types.AttributeValue {
	return &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
		"type": avS(d.Type), "state": avS(string(sluice.DeliveryPending)), "attempts": avN(0), "ord": avN(int64(i)),
	}}
}

func decodeDeliveries(item map[string]types.AttributeValue) []sluice.Delivery {
	m, ok := item[deliveriesAttr].(*types.AttributeValueMemberM)
	if !ok {
		return nil
	}
	type ordered struct {
		ord int64
		d   sluice.Delivery
	}
	var all []ordered
	for sink, v := range m.Value {
		f, ok := v.(*types.AttributeValueMemberM)
		if !ok {
			continue
		}
		d := sluice.Delivery{Sink: sink, Type: getS(f.Value, "type"), State: sluice.DeliveryState(getS(f.Value, "state")),
			Attempts: int(getN(f.Value, "attempts")), Reason: getS(f.Value, "reason"), At: getT(f.Value, "at")}
		all = append(all, ordered{getN(f.Value, "ord"), d})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ord < all[j].ord })
	out := make([]sluice.Delivery, len(all))
	for i, o := range all {
		out[i] = o.d
	}
	return out
}

// InitDeliveries implements sluice.Ledger: the map is set only where the
// item has none.
func (l *Ledger) InitDeliveries(ctx context.Context, id string, sinks []sluice.Delivery) ([]sluice.Delivery, error) {
	if len(sinks) > 0 {
		m := map[string]types.AttributeValue{}
		for i, s := range sinks {
			m[s.Sink] = deliveryAV(i, s)
		}
		_, err := l.db.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(l.db.tables.Batches),
			Key:                       l.key(id),
			UpdateExpression:          aws.String("SET #d = :m"),
			ConditionExpression:       aws.String("attribute_exists(id) AND attribute_not_exists(#d)"),
			ExpressionAttributeNames:  map[string]string{"#d": deliveriesAttr},
			ExpressionAttributeValues: map[string]types.AttributeValue{":m": &types.AttributeValueMemberM{Value: m}},
		})
		if err != nil && !isConditionFailed(err) {
			return nil, fmt.Errorf("dynamodb: deliveries of batch %q: %w", id, err)
		}
	}
	b, err := l.GetBatch(ctx, id)
	return b.Deliveries, err
}

// deliveryUpdate runs one conditional update of one sink's delivery and
// returns the stored delivery and whether the condition held.
func (l *Ledger) deliveryUpdate(ctx context.Context, id, sink, expr, cond string, values map[string]types.AttributeValue) (sluice.Delivery, bool, error) {
	names := map[string]string{"#d": deliveriesAttr, "#s": sink, "#st": "state", "#r": "reason", "#at": "at"}
	out, err := l.db.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.db.tables.Batches),
		Key:                       l.key(id),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_exists(#d.#s) AND " + cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	var b sluice.Batch
	changed := err == nil
	switch {
	case isConditionFailed(err):
		if b, err = l.GetBatch(ctx, id); err != nil {
			return sluice.Delivery{}, false, err
		}
	case err != nil:
		return sluice.Delivery{}, false, fmt.Errorf("dynamodb: delivery %q of batch %q: %w", sink, id, err)
	default:
		b = decodeBatch(out.Attributes)
	}
	d, ok := b.Delivery(sink)
	if !ok {
		return d, false, fmt.Errorf("dynamodb: batch %q has no sink %q: %w", id, sink, sluice.ErrNotFound)
	}
	return d, changed, nil
}

// RecordDelivery implements sluice.Ledger.
func (l *Ledger) RecordDelivery(ctx context.Context, id string, d sluice.Delivery) (sluice.Delivery, bool, error) {
	values := map[string]types.AttributeValue{
		":pending": avS(string(sluice.DeliveryPending)), ":state": avS(string(d.State)),
		":n": avN(int64(d.Attempts)), ":at": avS(d.At.UTC().Format(timeFormat)),
	}
	expr := "SET #d.#s.#st = :state, #d.#s.#at = :at, #d.#s.attempts = #d.#s.attempts + :n"
	if d.Reason != "" {
		values[":r"] = avS(d.Reason)
		expr += ", #d.#s.#r = :r"
	} else {
		expr += " REMOVE #d.#s.#r"
	}
	return l.deliveryUpdate(ctx, id, d.Sink, expr, "#d.#s.#st = :pending", values)
}

// ResetDelivery implements sluice.Ledger.
func (l *Ledger) ResetDelivery(ctx context.Context, id, sink string, force bool) (sluice.Delivery, bool, error) {
	values := map[string]types.AttributeValue{":pending": avS(string(sluice.DeliveryPending))}
	cond := "#d.#s.#st <> :pending"
	if !force {
		values[":failed"] = avS(string(sluice.DeliveryFailed))
		cond = "#d.#s.#st = :failed"
	}
	return l.deliveryUpdate(ctx, id, sink, "SET #d.#s.#st = :pending REMOVE #d.#s.#r, #d.#s.#at", cond, values)
}
