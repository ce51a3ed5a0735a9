#!/bin/sh
# The image's entrypoint: its first argument names the process, the rest go to it, so
# `docker run shop:dev user_svc` serves and `docker run shop:dev user_svc migrate` only
# migrates. `exec` makes the service PID 1: it receives the SIGTERM of `docker stop` or of
# Kubernetes itself and drains (SHOP_DRAIN_SECONDS, then SHOP_GRACE_SECONDS). Anything
# else is refused, so a typo fails at once instead of starting a shell or another module.
set -eu

usage="usage: <image> user_svc|order_svc|gateway [ARGS...]  (e.g. user_svc migrate)"

if [ "$#" -eq 0 ]; then
    echo "$usage" >&2
    exit 64
fi

case "$1" in
    user_svc | order_svc | gateway)
        name="$1"
        shift
        exec python -m "$name" "$@"
        ;;
    *)
        echo "unknown process '$1'; $usage" >&2
        exit 64
        ;;
esac
