#!/bin/sh
# total.sh COUNTS... — add up "passed failed" files from check-one runs.
p=0; f=0
for c in "$@"; do
    read -r a b <"$c" || { echo "total: $c missing" >&2; exit 1; }
    p=$((p + a)); f=$((f + b))
done
echo "total: $p passed, $f failed"
[ "$f" -eq 0 ]
