# shellcheck shell=bash
# Paths and helpers shared by the lab scripts. Sourced, never run.
# shellcheck disable=SC2034 # the variables are for the scripts that source this

lab_scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lab_dir="${BRAMBLE_CACHE:-$HOME/.cache/bramble}/lab"
lab_key="$lab_dir/id_ed25519"
lab_host_key="$lab_dir/ssh_host_ed25519_key"
lab_known_hosts="$lab_dir/known_hosts"
lab_www="$lab_dir/www"

# Status goes to stderr so that stdout carries only the data a script returns.
say() {
    printf 'lab: %s\n' "$*" >&2
}

# die MESSAGE [HINT]
die() {
    printf 'error: %s\n' "$1" >&2
    if [[ $# -gt 1 ]]; then
        printf 'hint: %s\n' "$2" >&2
    fi
    exit 1
}

check_name() {
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] ||
        die "guest name '$1' is not valid" "use letters, digits, '-' and '_'"
}

check_port() {
    if ! [[ $1 =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > 65535)); then
        die "port '$1' is not a TCP port number"
    fi
}

# pid_matches PIDFILE NEEDLE: the process named in PIDFILE is alive and its
# command line contains NEEDLE. The second test keeps a recycled pid from
# being mistaken for ours.
pid_matches() {
    local pid
    [[ -r $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

# stop_pid PIDFILE NEEDLE: TERM, then KILL if the process outlives 10 s.
stop_pid() {
    local pid tries
    pid_matches "$1" "$2" || return 0
    pid=$(<"$1")
    kill -TERM "$pid" 2>/dev/null || true
    for ((tries = 0; tries < 50; tries++)); do
        pid_matches "$1" "$2" || return 0
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# The ssh options every lab login uses: only the lab key, only the lab
# known_hosts, and no user configuration that could change either.
lab_ssh_options() {
    printf '%s\n' -F /dev/null -i "$lab_key" \
        -o IdentitiesOnly=yes -o BatchMode=yes \
        -o UserKnownHostsFile="$lab_known_hosts" \
        -o GlobalKnownHostsFile=/dev/null \
        -o StrictHostKeyChecking=yes -o ConnectTimeout=5 \
        -o LogLevel=ERROR
}

# remove_tree DIR: unmount anything left mounted below DIR (a debootstrap that
# died mid-run leaves /proc and /sys mounted in its target), then delete it
# without ever crossing into another file system.
remove_tree() {
    local dir mounts
    [[ -e $1 ]] || return 0
    dir=$(realpath "$1")
    mounts=$(awk -v dir="$dir/" 'index($2, dir) == 1 { print $2 }' /proc/mounts |
        sort -r)
    if [[ -n $mounts ]]; then
        xargs -r -n1 umount -l <<<"$mounts"
    fi
    rm -rf --one-file-system -- "$dir"
}
