#!/bin/sh
# Docker HEALTHCHECK of c2quay-test/web.
# No `wget -T`: Debian's busybox-static 1.35 wget segfaults with it (exit
# 139); the HEALTHCHECK --timeout bounds the probe instead.
case "$(cat /etc/c2quay-test/variant)" in
unhealthy)
    echo "c2quay-test: the unhealthy variant never passes its healthcheck"
    exit 1
    ;;
smokefail)
    # Healthy as far as Docker can tell: the server answers on /.
    exec wget -q -O /dev/null http://127.0.0.1:8080/
    ;;
*)
    exec wget -q -O /dev/null http://127.0.0.1:8080/healthz
    ;;
esac
