#!/bin/bash
# bench/stages.sh BIN DATA INPUT [run flags...]: one timed `sluice run` of
# INPUT on the data directory DATA (its reference loaded beforehand, e.g.
# `BIN reference load --data DATA financials.csv`), printing wall, user and
# sys CPU and peak RSS (GNU time), then the batch's stage walls from
# `sluice status --json`: process start -> created -> split ended -> last
# chunk processed -> merged -> notified -> process exit. The bucket and
# outbox of DATA are removed first, so every run is a new batch. Used for
# the A/B comparisons in BENCHMARKS.md; `make bench-duckdb` reports the
# same stages for its timed runs.
set -euo pipefail
bin=$1; data=$2; in=$3; shift 3
rm -rf "$data/bucket" "$data/outbox"
sync; sleep 1
tf=$(mktemp)
s=$(date +%s.%N)
out=$(/usr/bin/time -o "$tf" -f "wall %e user %U sys %S maxrss %M" "$bin" run --json --no-progress --data "$data" "$@" "$in")
e=$(date +%s.%N)
cat "$tf"; rm -f "$tf"
id=$(echo "$out" | python3 -c 'import json,sys;print(json.load(sys.stdin)["batchId"])')
"$bin" status --json --data "$data" "$id" | python3 -c "
import json,sys
from datetime import datetime
d=json.load(sys.stdin); s=$s; e=$e
def t(k): return datetime.fromisoformat(d[k].replace('Z','+00:00')).timestamp()
prev=s; o=[]
for k in ['createdAt','splitAt','processedAt','mergedAt','notifiedAt']:
  o.append('%s %.3f'%(k[:-2], t(k)-prev)); prev=t(k)
o.append('exit %.3f total %.3f'%(e-prev, e-s)); print(' | '.join(o))
"
