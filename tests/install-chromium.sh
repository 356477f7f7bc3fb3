#!/bin/sh
# The dashboard's browser tests drive Debian's Chromium (/usr/bin/chromium).
# `make test` calls this first: as root with apt-get, it installs Chromium;
# otherwise it says what to run, and the browser tests fail with that reason.
set -u
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "make test: the browser tests need Debian's chromium at /usr/bin/chromium;" >&2
    echo "  install it with: sudo apt-get install chromium   (they fail without it)" >&2
    exit 0
fi
echo "make test: installing Debian's chromium for the browser tests ..."
for attempt in 1 2 3; do
    if apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
        exit 0
    fi
    echo "make test: apt-get failed (attempt $attempt)" >&2
    sleep 5
done
echo "make test: chromium could not be installed; the browser tests will fail" >&2
exit 0
