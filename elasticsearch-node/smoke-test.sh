#!/usr/bin/env bash
# Smoke test of the local Elasticsearch node: builds nothing, expects target/classes and target/lib (run
# `mvn -q -f elasticsearch-node/pom.xml -DskipTests package` first). Starts the node on a temp dir, exercises the
# features the project relies on with curl, stops it with SIGTERM, restarts it on the same data and checks the
# documents are still there. Prints one line per check and ends with 'N passed, N failed'.
#   usage: elasticsearch-node/smoke-test.sh [PORT]       (default 19200)
#   JAVA_OPTS (e.g. -XX:TieredStopAtLevel=1) is passed to every JVM it starts.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
PORT="${1:-19200}"
E="http://127.0.0.1:$PORT"
WORK="$(mktemp -d /tmp/esnode-smoke.XXXXXX)"
JAVA="${JAVA:-java}"
HEAP="${ES_HEAP:-512m}"
read -r -a EXTRA <<<"${JAVA_OPTS:-}"
PASS=0; FAIL=0; PID=""

cleanup() { if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null; fi; }
trap cleanup EXIT

check() {  # check NAME CONDITION-OUTPUT PATTERN
  if printf '%s' "$2" | grep -Eq -- "$3"; then PASS=$((PASS+1)); echo "PASS $1";
  else FAIL=$((FAIL+1)); echo "FAIL $1: $(printf '%s' "$2" | head -c 400)"; fi
}
j() { curl -s -H 'Content-Type: application/json' "$@"; }

start_node() {  # start_node LOGFILE -> sets PID, prints startup seconds
  local t0; t0=$(date +%s%N)
  "$JAVA" "${EXTRA[@]}" -Xms"$HEAP" -Xmx"$HEAP" -cp "$HERE/target/classes:$HERE/target/lib/*" orchestratordata.esnode.LocalNode \
    --home "$WORK/home" --data "$WORK/data" --repo "$WORK/repo" --logs "$WORK/logs" \
    --http-port "$PORT" --host 127.0.0.1 --cluster-name smoke >"$WORK/$1.out" 2>"$WORK/$1.err" &
  PID=$!
  for _ in $(seq 1 1200); do
    grep -q '^READY ' "$WORK/$1.out" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "startup_seconds=$(( ($(date +%s%N) - t0) / 1000000 ))ms rss_kb=$(ps -o rss= -p "$PID" 2>/dev/null | tr -d ' ')"
}

stop_node() {
  kill -TERM "$PID"; wait "$PID"; local rc=$?; PID=""; echo "exit_code_after_sigterm=$rc"
}

echo "work dir: $WORK"
start_node run1
check "READY line" "$(cat "$WORK/run1.out")" "^READY http://127\.0\.0\.1:$PORT\$"
check "GET / version 8.x" "$(j "$E/")" '"number" *: *"8\.'
check "X-Elastic-Product header" "$(curl -sI "$E/")" '^[Xx]-[Ee]lastic-[Pp]roduct: Elasticsearch'
check "cluster health yellow" "$(j "$E/_cluster/health?wait_for_status=yellow&timeout=30s")" '"status":"(yellow|green)"'
check "index template" "$(j -XPUT "$E/_index_template/workflows" -d '{"index_patterns":["workflows-*"],"template":{"settings":{"number_of_shards":1,"number_of_replicas":0},"mappings":{"properties":{"name":{"type":"text","fields":{"raw":{"type":"keyword"}}},"status":{"type":"keyword"},"started":{"type":"date"},"duration_ms":{"type":"long"},"score":{"type":"float"},"ok":{"type":"boolean"},"description":{"type":"text"}}}}}')" '"acknowledged":true'
check "index with write alias" "$(j -XPUT "$E/workflows-000001" -d '{"aliases":{"workflows":{"is_write_index":true}}}')" '"acknowledged":true'
check "mapping from template" "$(j "$E/workflows-000001/_mapping")" '"duration_ms":\{"type":"long"\}'
printf '%s\n' \
  '{"index":{"_id":"1"}}' '{"name":"daily ingest orders","status":"success","started":"2026-11-01T10:00:00Z","duration_ms":1200,"score":0.5,"ok":true,"description":"loads the orders table"}' \
  '{"index":{"_id":"2"}}' '{"name":"hourly sync customers","status":"failed","started":"2026-11-01T11:00:00Z","duration_ms":300,"score":0.9,"ok":false,"description":"customer records sync"}' \
  '{"index":{"_id":"3"}}' '{"name":"daily report","status":"success","started":"2026-11-02T09:30:00Z","duration_ms":5000,"score":0.1,"ok":true,"description":"orders report to email"}' \
  > "$WORK/bulk.ndjson"
check "bulk via alias" "$(curl -s -H 'Content-Type: application/x-ndjson' -XPOST "$E/workflows/_bulk?refresh=true" --data-binary @"$WORK/bulk.ndjson")" '"errors":false'
check "match query" "$(j "$E/workflows/_search" -d '{"query":{"match":{"name":"daily"}}}')" '"total":\{"value":2'
check "multi_match query" "$(j "$E/workflows/_search" -d '{"query":{"multi_match":{"query":"orders","fields":["name","description"]}}}')" '"total":\{"value":2'
check "bool/range/term" "$(j "$E/workflows/_search" -d '{"query":{"bool":{"filter":[{"term":{"ok":true}},{"range":{"duration_ms":{"gte":1000}}},{"range":{"score":{"lt":0.6}}}]}}}')" '"total":\{"value":2'
AGGS="$(j "$E/workflows/_search" -d '{"size":0,"aggs":{"by_status":{"terms":{"field":"status"}},"per_day":{"date_histogram":{"field":"started","calendar_interval":"day"}},"p":{"percentiles":{"field":"duration_ms","percents":[50,95]}},"avg":{"avg":{"field":"score"}}}}')"
check "terms agg" "$AGGS" '"key":"success","doc_count":2'
check "date_histogram agg" "$AGGS" '"key_as_string":"2026-11-01T00:00:00.000Z","key":[0-9]+,"doc_count":2'
check "percentiles agg" "$AGGS" '"50.0":1200.0'
check "rollover dry_run" "$(j -XPOST "$E/workflows/_rollover?dry_run=true" -d '{"conditions":{"max_docs":1}}')" '"rolled_over":false,"dry_run":true'
check "rollover" "$(j -XPOST "$E/workflows/_rollover" -d '{"conditions":{"max_docs":1}}')" '"new_index":"workflows-000002","rolled_over":true'
check "alias moved" "$(j "$E/_alias/workflows")" '"workflows-000002":\{"aliases":\{"workflows":\{"is_write_index":true'
check "write after rollover" "$(j -XPOST "$E/workflows/_doc/4?refresh=true" -d '{"name":"after rollover","status":"success","duration_ms":10}')" '"_index":"workflows-000002"'
check "_reindex" "$(j -XPOST "$E/_reindex?refresh=true" -d '{"source":{"index":"workflows-000001","query":{"term":{"status":"success"}}},"dest":{"index":"workflows-copy"}}')" '"total":2,"updated":0,"created":2'
check "_reindex result searchable" "$(j "$E/workflows-copy/_count")" '"count":2'
check "_update_by_query" "$(j -XPOST "$E/workflows-000001/_update_by_query?refresh=true&conflicts=proceed")" '"total":3,"updated":3'
check "_update_by_query script refused" "$(j -XPOST "$E/workflows-000001/_update_by_query" -d '{"script":{"source":"ctx._source.x=1"}}')" '"status":400'
check "_delete_by_query" "$(j -XPOST "$E/workflows-copy/_delete_by_query?refresh=true" -d '{"query":{"match":{"name":"report"}}}')" '"total":1,.*"deleted":1'
check "_delete_by_query result" "$(j "$E/workflows-copy/_count")" '"count":1'
check "fs snapshot repo" "$(j -XPUT "$E/_snapshot/backup" -d "{\"type\":\"fs\",\"settings\":{\"location\":\"$WORK/repo/backup\"}}")" '"acknowledged":true'
check "snapshot" "$(j -XPUT "$E/_snapshot/backup/snap1?wait_for_completion=true" -d '{"indices":"workflows-*"}')" '"state":"SUCCESS"'
check "delete index" "$(j -XDELETE "$E/workflows-000001")" '"acknowledged":true'
check "restore" "$(j -XPOST "$E/_snapshot/backup/snap1/_restore?wait_for_completion=true" -d '{"indices":"workflows-000001"}')" '"failed":0'
check "restored docs" "$(j "$E/workflows-000001/_count")" '"count":3'
stop_node
check "clean stop log" "$(tail -5 "$WORK/logs/smoke.log")" 'node closed'

start_node run2
check "restart READY" "$(cat "$WORK/run2.out")" "^READY "
j "$E/_cluster/health?wait_for_status=green&timeout=30s" >/dev/null
check "docs kept after restart" "$(j "$E/workflows/_count")" '"count":4'
check "template kept after restart" "$(j "$E/_index_template/workflows")" '"name":"workflows"'
check "snapshot kept after restart" "$(j "$E/_snapshot/backup/_all")" '"snapshot":"snap1"'

# a second node on the same port must fail fast with exit code 3
"$JAVA" "${EXTRA[@]}" -Xmx256m -cp "$HERE/target/classes:$HERE/target/lib/*" orchestratordata.esnode.LocalNode \
  --home "$WORK/home2" --http-port "$PORT" >"$WORK/busy.out" 2>"$WORK/busy.err"; RC=$?
check "port in use -> exit 3" "rc=$RC $(cat "$WORK/busy.err")" "rc=3 ERROR: port $PORT"
stop_node
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
