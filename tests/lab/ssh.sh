#!/usr/bin/env bash
# ssh.sh [USER@]NAME [COMMAND...]: logs in to a running lab guest (as pi
# unless USER is given) with the lab key and known_hosts.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    [[ $# -ge 1 ]] || die "usage: ssh.sh [USER@]NAME [COMMAND...]"
    local user=pi name=$1 port_file options
    shift
    if [[ $name == *@* ]]; then
        user=${name%%@*}
        name=${name#*@}
    fi
    check_name "$name"
    port_file="$lab_dir/run/$name/port"
    [[ -f $port_file ]] ||
        die "lab guest $name is not running" "start it: tests/lab/boot.sh $name PORT"

    mapfile -t options < <(lab_ssh_options)
    exec ssh "${options[@]}" -p "$(<"$port_file")" "$user@127.0.0.1" "$@"
}

main "$@"
