#!/bin/sh
# Lambda runtime wrapper (AWS_LAMBDA_EXEC_WRAPPER, set by infra/housekeeping-stack.ts).
#
# Lambda starts the runtime as `exec-wrapper.sh <node> <runtime flags...> <runtime entry>`. The
# Node.js runtime's published bootstrap sizes V8's young generation from the function memory on
# that command line (--max-semi-space-size, 51 MB per semi-space at 1024 MB), and a command-line
# flag wins over NODE_OPTIONS. With a young generation that large, one 1 GiB stream's short-lived
# chunks pile up to 185-195 MB of resident memory before they are collected; the function's
# NODE_OPTIONS asks for a small one instead, and peaks at about 160 MB (README, Benchmarks,
# Memory). So this drops the runtime's semi-space flag, keeps every other argument as it was, and
# starts the runtime. Should the runtime pass no such flag, it only starts the runtime.
set -eu

# The interpreter comes first and the runtime's entry last; only the flags between are looked at.
count=$#
index=0
for arg do
  shift
  index=$((index + 1))
  if [ "$index" -gt 1 ] && [ "$index" -lt "$count" ]; then
    case "$arg" in
      # Node takes V8 flags in the --name=value form only.
      --max[-_]semi[-_]space[-_]size=*) continue ;;
    esac
  fi
  set -- "$@" "$arg"
done

exec "$@"
