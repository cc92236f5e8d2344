#!/usr/bin/env bash
# send -> receive -> ack over postroom's HTTP API with curl and jq.
#
#   postroom serve &                                   # http://127.0.0.1:8000
#   bash examples/http/send_receive_ack.sh [BASE_URL] [QUEUE]
#
# With tokens configured, export POSTROOM_TOKEN=<a token with send+receive>.
set -euo pipefail
BASE=${1:-http://127.0.0.1:8000}
QUEUE=${2:-images.resize}
AUTH=()
if [ -n "${POSTROOM_TOKEN:-}" ]; then AUTH=(-H "Authorization: Bearer $POSTROOM_TOKEN"); fi
api() {  # api METHOD PATH [JSON]: print the answer, fail on a 4xx/5xx
  curl --silent --show-error --fail-with-body -X "$1" "${AUTH[@]}" \
    -H 'content-type: application/json' "$BASE$2" ${3:+--data "$3"}
}

id=$(api POST "/v1/queues/$QUEUE/messages" '{"body": {"image": "cat.png"}}' | jq -r .id)
echo "sent $id"

# Long-poll up to 5 s for one message; lease it for 60 s.
msg=$(api POST "/v1/queues/$QUEUE/receive" '{"max_messages": 1, "wait": 5, "visibility_timeout": 60}' \
  | jq -c '.messages[0]')
if [ "$msg" = "null" ]; then echo "no message arrived" >&2; exit 1; fi
echo "received $(jq -r .id <<<"$msg") attempt $(jq -r .attempts <<<"$msg"): $(jq -c .body <<<"$msg")"

# ... do the work; then ack with the receipt (or /retry, /reject, /extend).
api POST "/v1/queues/$QUEUE/ack" "$(jq -c '{receipt, id}' <<<"$msg")" >/dev/null
echo "acked"
