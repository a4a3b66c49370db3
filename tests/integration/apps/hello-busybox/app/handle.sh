#!/bin/sh
# One HTTP request on stdin/stdout (nc -e), answered with Connection: close.
VERSION=$(cat /app/VERSION)
VOLUME=${KILN_VOLUME_UPLOADS:-/tmp/uploads}
read -r method target _
length=0
while read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  case "$line" in
    [Cc]ontent-[Ll]ength:*) length=$(printf '%s' "${line#*:}" | tr -d ' ') ;;
  esac
done
reply() {
  body=$(printf '%s\n' "$2")
  printf 'HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s\n' \
    "$1" "$(( ${#body} + 1 ))" "$body"
  exit 0
}
case "$target" in
  /healthz)
    [ "$FAIL_HEALTH" = 1 ] && reply "500 Internal Server Error" unhealthy
    reply "200 OK" ok ;;
  /slow*)
    seconds=${target#*=}; [ "$seconds" = "$target" ] && seconds=1
    sleep "$seconds"; reply "200 OK" "$VERSION slow done" ;;
  /artifact-write)
    if msg=$( (echo tampered > /app/tampered.txt) 2>&1 ); then reply "200 OK" written; fi
    case "$msg" in *Read-only*) reply "200 OK" "refused: Read-only file system" ;; esac
    reply "200 OK" "refused: $msg" ;;
  /data)
    mkdir -p "$VOLUME"
    if [ "$method" = POST ]; then
      name="$VERSION-$(date +%s)-$$.txt"
      head -c "$length" > "$VOLUME/$name"
      reply "201 Created" "stored $name"
    fi
    out=""
    for f in "$VOLUME"/*; do [ -f "$f" ] && out="$out$(basename "$f"): $(cat "$f")
"; done
    reply "200 OK" "$out" ;;
  *)
    # ERROR_RATE=0.2 makes that fraction of GET / answer 500 (for canary tests).
    if [ -n "$ERROR_RATE" ] && awk -v r="$ERROR_RATE" -v x="$RANDOM" 'BEGIN { exit !(x / 32768 < r) }'; then
      reply "500 Internal Server Error" "$VERSION error"
    fi
    reply "200 OK" "$VERSION ${GREETING:-hello}
from ${KILN_INSTANCE:-$(hostname)}" ;;
esac
