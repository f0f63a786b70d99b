#!/bin/bash
# usage: run.sh before|after [catalogs...]   before = main 9e4cb85 (snapshot in main-src), after = branch issue-19e;
# each on a fresh copy of the same index (<catalog>-base), understanding re-learned by its own code (--learn).
cd /work/wt-data/19e; R=/work/wt-data/19e/res; PY="nice -n 5 /work/main/.venv/bin/python"
side=$1; shift
[ $side = before ] && W=/work/wt-data/19e/main-src || W=/work/wt/19e
export PYTHONPATH=$W
for c in ${@:-sample ikea grocery market}; do
case $c in
  market) SETS="/work/catalogs/market/queries/*.jsonl"; EXTRA="";;
  ikea) SETS="/work/evalsets/ikea/*.jsonl"; EXTRA="--queries /work/shared/catalogs/ikea/category.jsonl";;
  grocery) SETS="/work/evalsets/grocery/*.jsonl"; EXTRA="";;
  sample) SETS="/work/evalsets/fashion/*.jsonl"; EXTRA="--spec $W/benchmarks/queries/fashion-shopper.jsonl";;
esac
echo "== $side $c $(date -u) load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf $side-$c; cp -r $c-base $side-$c
if [ $c != market ]; then
  $PY $W/benchmarks/shopper_queries.py --data-dir $side-$c --name shopper-$c-$side $EXTRA --titles --learn --results $R > /dev/null
  $PY /work/wt/19e/benchmarks/words_sets.py --data-dir $side-$c --name words-$c-$side --results $R --sets $SETS --typo-dev --per-query > /dev/null
else
  $PY /work/wt/19e/benchmarks/words_sets.py --data-dir $side-$c --name words-$c-$side --results $R --sets $SETS --typo-dev --learn --per-query > /dev/null
fi
echo "   learned: $(sqlite3 $side-$c/catalog.db "select value from meta where key='understanding'" | cut -c1-200)"
done
echo "DONE $side $(date -u) load $(cut -d' ' -f1-3 /proc/loadavg)"
