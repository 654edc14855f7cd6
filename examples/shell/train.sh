#!/usr/bin/env bash
# Any program can be tuned: this one is a shell script. It "trains" for a few steps and prints each
# result as an `asktell:` line that the agent reports; the last one becomes the final value.
#
#   asktell studies create shell-demo --spec examples/shell/study.json
#   asktell agent shell-demo --count 10 -- bash examples/shell/train.sh {x} {y}
set -euo pipefail
x=$1
y=$2
steps=${STEPS:-5}
for step in $(seq 1 "$steps"); do
    # The loss approaches (x - 1)^2 + (y + 0.5)^2 as the steps go on.
    loss=$(awk -v x="$x" -v y="$y" -v s="$step" 'BEGIN { printf "%.6f", (x - 1)^2 + (y + 0.5)^2 + 1 / s }')
    echo "asktell: step=$step loss=$loss"
done
