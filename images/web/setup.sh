#!/bin/sh
# Build-time setup of a c2quay-test/web image: writes the docroot and the
# variant marker. Usage: setup.sh VERSION VARIANT (VARIANT: ok|unhealthy|smokefail)
set -eu
version="$1"
variant="$2"
mkdir -p /www/cgi-bin /etc/c2quay-test
echo "$variant" > /etc/c2quay-test/variant

case "$variant" in
ok)
    echo "$version" > /etc/c2quay-test/version
    printf 'c2quay-test web version %s\n' "$version" > /www/index.html
    printf 'ok version %s\n' "$version" > /www/healthz
    printf '%s\n' "$version" > /www/version
    status="200 OK"
    status_body="ok version $version"
    ;;
unhealthy)
    echo unhealthy > /etc/c2quay-test/version
    printf 'c2quay-test web UNHEALTHY\n' > /www/index.html
    printf 'c2quay-test web UNHEALTHY\n' > /www/404.html
    printf 'unhealthy\n' > /www/version
    status="500 Internal Server Error"
    status_body="c2quay-test web UNHEALTHY"
    ;;
smokefail)
    echo smokefail > /etc/c2quay-test/version
    printf 'c2quay-test web BROKEN\n' > /www/index.html
    printf 'c2quay-test web BROKEN\n' > /www/404.html
    printf 'smokefail\n' > /www/version
    status="500 Internal Server Error"
    status_body="c2quay-test web BROKEN"
    ;;
*)
    echo "setup.sh: unknown VARIANT '$variant' (want ok|unhealthy|smokefail)" >&2
    exit 2
    ;;
esac

# /cgi-bin/status answers a real HTTP status code (busybox httpd cannot map
# a CGI onto /healthz itself).
cat > /www/cgi-bin/status <<CGI
#!/bin/sh
printf 'Status: $status\r\nContent-Type: text/plain\r\n\r\n$status_body\n'
CGI
chmod 755 /www/cgi-bin/status

# Custom 404 page for the failing variants, so /healthz names the breakage.
if [ -f /www/404.html ]; then
    echo 'E404:/www/404.html' > /etc/httpd.conf
else
    : > /etc/httpd.conf
fi
