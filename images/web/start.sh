#!/bin/sh
# PID 1 of c2quay-test/web: runs busybox httpd on :8080 and stops it on
# TERM/INT (a bare httpd as PID 1 would ignore SIGTERM).
echo "c2quay-test web: variant $(cat /etc/c2quay-test/variant), version $(cat /etc/c2quay-test/version), listening on :8080"
httpd -f -p 8080 -h /www -c /etc/httpd.conf &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 0' TERM INT
wait "$pid"
