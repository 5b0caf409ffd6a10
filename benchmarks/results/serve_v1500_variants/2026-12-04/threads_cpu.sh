#!/bin/bash
# per-thread CPU of the bench's server over a 10 s window of a 20 s batched wrk run
cd "$(dirname "$0")/../../../.."  # the repository root
(HF_HUB_OFFLINE=1 $EXTRA .venv/bin/python -m paramcast bench serve --devices 32 --seconds 20 --num-answers 1500 --method cdc-mmpg --method-arg serve_dtype=int8 --modes ${MODE:-batched} --load wrk --no-compute --out /tmp/paramcast-tc > /tmp/paramcast-tc.log 2>&1 &)
sleep 22
SP=$(pgrep -f "paramcast.cli.serve" | head -1)
snap() { for t in /proc/$SP/task/*; do echo "$(basename $t) $(cat $t/comm | tr ' ' _) $(awk '{print $14+$15}' $t/stat)"; done; }
snap > /tmp/paramcast-tc0; sleep 10; snap > /tmp/paramcast-tc1
join /tmp/paramcast-tc0 /tmp/paramcast-tc1 | awk '{d=($5-$3)/100/10; if (d>0.005) printf "%s %s %.3f cores\n", $1, $2, d}'
sleep 15; grep -E '^\| (batched|static) ' /tmp/paramcast-tc.log
