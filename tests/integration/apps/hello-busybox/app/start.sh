# Serves the same endpoints as examples/hello/app/server.py (see handle.sh).
sleep "${STARTUP_DELAY:-0}"
echo "$(cat /app/VERSION) listening on ${PORT:=8000}"
nc -ll -p "$PORT" -e /app/handle.sh &
server=$!
# PID 1 ignores SIGTERM unless it traps it: stop at once when kiln destroys us.
trap 'kill $server; echo stopped; exit 0' TERM INT
wait $server
