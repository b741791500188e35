#!/usr/bin/env bash
# Survey of the attacks on sampled guarded allocations: ../run.sh on the
# programs in this directory, with HARDHEAP_GUARDED_SAMPLE_RATE=1 (every
# allocation sampled) unless the caller sets it.
#
#   hardening/attacks/guarded/run.sh LIB [name...]
here=$(cd "$(dirname "$0")" && pwd)
export HARDHEAP_GUARDED_SAMPLE_RATE=${HARDHEAP_GUARDED_SAMPLE_RATE:-1}
ATTACK_DIR=$here exec "$here/../run.sh" "$@"
