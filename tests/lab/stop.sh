#!/usr/bin/env bash
# stop.sh NAME: stops lab guest NAME and discards its overlay. The serial
# console log stays in $lab_dir/run/NAME/ for debugging. Stopping a guest
# that is not running succeeds.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    [[ $# -eq 1 ]] || die "usage: stop.sh NAME"
    local name=$1 run
    check_name "$name"
    run="$lab_dir/run/$name"
    [[ -d $run ]] || return 0

    if pid_matches "$run/qemu.pid" "$run/overlay.qcow2"; then
        # The overlay is thrown away, so there is nothing to shut down cleanly.
        stop_pid "$run/qemu.pid" "$run/overlay.qcow2"
        say "stopped $name"
    fi
    rm -f "$run/qemu.pid" "$run/overlay.qcow2" "$run/port" "$run/image"
}

main "$@"
