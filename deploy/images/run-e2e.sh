#!/usr/bin/env bash
# Runs the three images as a cluster would (read-only root filesystem, the images' non-root
# user, no capabilities, no privilege escalation) and sends the black-box e2e suite to
# telephony in its container. Needs the images from `make images` (tag REVISION).
set -euo pipefail
cd "$(dirname "$0")/../.."
engine=${ENGINE:-$(command -v podman || command -v docker)}
revision=${REVISION:-$(git rev-parse --short=12 HEAD)}
port=$(.venv/bin/python -c 'from aura_dev.stack import free_port; print(free_port())')
token="e2e-$RANDOM-$RANDOM"
name="aura-e2e-$$"

hardened=(--read-only --tmpfs /tmp:size=16m --cap-drop ALL --security-opt no-new-privileges
          -e LOG_FORMAT=json)
if [[ "$(basename "$engine")" == podman ]]; then
  hardened+=(--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
fi

cleanup() {
  status=$?
  if [[ $status -ne 0 ]]; then
    for service in memory llm telephony; do
      echo "--- $service logs"; "$engine" logs "$name-$service" 2>&1 | tail -n 30 || true
    done
  fi
  # One at a time, the network's owner last: it cannot go while others share its namespace.
  for service in telephony llm memory; do
    "$engine" rm -f "$name-$service" >/dev/null 2>&1 || true
  done
  exit $status
}
trap cleanup EXIT

# One network namespace for the three, as containers of one pod share: memory's, which
# also publishes telephony's port. Works alike with podman and docker.
"$engine" run -d --name "$name-memory" -p "127.0.0.1:$port:8000" "${hardened[@]}" \
  "aura-memory:$revision" >/dev/null
shared=(--network "container:$name-memory")
"$engine" run -d --name "$name-llm" "${shared[@]}" "${hardened[@]}" "aura-llm:$revision" >/dev/null
"$engine" run -d --name "$name-telephony" "${shared[@]}" "${hardened[@]}" \
  -e TWILIO_AUTH_TOKEN="$token" \
  -e LLM_SERVICE_ADDRESS=127.0.0.1:50051 -e MEMORY_SERVICE_ADDRESS=127.0.0.1:50052 \
  "aura-telephony:$revision" >/dev/null

for service in memory llm telephony; do
  uid=$("$engine" exec "$name-$service" python3 -c 'import os; print(os.getuid())')
  [[ "$uid" != 0 ]] || { echo "$service runs as root" >&2; exit 1; }
  if "$engine" exec "$name-$service" sh -c 'touch /opt/aura/x' 2>/dev/null; then
    echo "$service can write to its root filesystem" >&2; exit 1
  fi
done

base="http://127.0.0.1:$port"
probe=(aura-probe --http http://127.0.0.1:8000/health
       --grpc 127.0.0.1:50051/aura.llm.v1.LlmService --grpc 127.0.0.1:50052/aura.memory.v1.MemoryService)
for _ in $(seq 60); do
  "$engine" exec "$name-telephony" "${probe[@]}" >/dev/null 2>&1 && break
  sleep 0.5
done
"$engine" exec "$name-telephony" "${probe[@]}"
echo "containers up (non-root, read-only); e2e against $base"
AURA_BASE_URL="$base" AURA_AUTH_TOKEN="$token" .venv/bin/pytest tests/e2e -q -p no:cacheprovider
