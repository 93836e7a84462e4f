#!/usr/bin/env bash
# Jaeger (built from source by build-tools.sh) on the node, for the cluster's traces: OTLP
# in on <node>:4317, the query API on <node>:16686, spans in memory. Its own configuration,
# not the all-in-one default, which listens on every address for the query API and opens
# ports nobody here uses.
# Usage: deploy/cluster/jaeger.sh start|stop|address|query-address
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/cluster/env.sh
pidfile=$CLUSTER/jaeger.pid
case "${1:-}" in
  start)
    mkdir -p "$CLUSTER/logs"
    cat > "$CLUSTER/jaeger.yaml" <<EOF
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter]}
  telemetry:
    metrics: {level: none}
extensions:
  jaeger_storage:
    backends:
      memstore: {memory: {max_traces: 100000}}
  jaeger_query:
    storage: {traces: memstore}
    grpc: {endpoint: "$NODE_IP:16685"}
    http: {endpoint: "$NODE_IP:16686"}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "$NODE_IP:4317"}
      http: {endpoint: "$NODE_IP:4318"}
processors:
  batch:
exporters:
  jaeger_storage_exporter: {trace_storage: memstore}
EOF
    "$JAEGER_BIN" --config "file:$CLUSTER/jaeger.yaml" > "$CLUSTER/logs/jaeger.log" 2>&1 &
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
