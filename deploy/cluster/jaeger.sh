#!/usr/bin/env bash
# Jaeger all-in-one (built from source by build-tools.sh) on the node, for the cluster's
# traces: OTLP in on <node>:4317, the query API on <node>:16686, spans in memory.
# Usage: deploy/cluster/jaeger.sh start|stop|address|query-address
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/cluster/env.sh
pidfile=$CLUSTER/jaeger.pid
case "${1:-}" in
  start)
    mkdir -p "$CLUSTER/logs"
    JAEGER_LISTEN_HOST=$NODE_IP "$JAEGER_BIN" > "$CLUSTER/logs/jaeger.log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 60); do
      if curl -sf "http://$NODE_IP:16686/api/services" >/dev/null; then echo "jaeger is up"; exit 0; fi
      sleep 1
    done
    echo "jaeger did not start; see $CLUSTER/logs/jaeger.log" >&2; exit 1
    ;;
  stop)
    [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null; rm -f "$pidfile"; true
    ;;
  address) echo "$NODE_IP:4317" ;;
  query-address) echo "$NODE_IP:16686" ;;
  *) echo "usage: $0 start|stop|address|query-address" >&2; exit 2 ;;
esac
