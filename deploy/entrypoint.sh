#!/bin/sh
# Every container of the image starts here. With CREDENTIALS_FILE set, the
# process gets its credentials (REDIS_URL, INTERNAL_TOKEN, ...) from that file,
# written by `python -m deploy.credentials init` into a volume and readable
# only by this process's user, never from the compose file or the image.
set -eu
if [ -n "${CREDENTIALS_FILE:-}" ]; then
    if [ ! -r "$CREDENTIALS_FILE" ]; then
        echo "ridehail-entrypoint: cannot read $CREDENTIALS_FILE as uid $(id -u);" \
             "the init service writes it (docker compose logs init)" >&2
        exit 1
    fi
    set -a
    . "$CREDENTIALS_FILE"
    set +a
fi
exec "$@"
