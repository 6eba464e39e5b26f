#!/usr/bin/env bash
# serve.sh PORT: serves the lab www directory on 127.0.0.1:PORT in the
# background; guests reach it as http://10.0.2.2:PORT/. Does nothing if it is
# already serving. serve.sh --stop PORT stops it.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    local stop=false
    if [[ ${1:-} == --stop ]]; then
        stop=true
        shift
    fi
    [[ $# -eq 1 ]] || die "usage: serve.sh [--stop] PORT"
    check_port "$1"
    pidfile="$lab_dir/run/http-$1.pid"
    server_args=(http.server --bind 127.0.0.1 --directory "$lab_www" "$1")
    # Matching the whole command line tells apart servers for different ports.
    needle="${server_args[*]}"

    if $stop; then
        stop_server "$1"
    else
        start_server "$1"
    fi
}

start_server() {
    local port=$1 log="$lab_dir/run/http-$1.log" tries
    if pid_matches "$pidfile" "$needle"; then
        return
    fi
    [[ -d $lab_www ]] || die "$lab_www does not exist" "run tests/lab/node-exporter.sh first"
    mkdir -p "$lab_dir/run"

    # setsid detaches the server from the caller's session and terminal.
    setsid python3 -m "${server_args[@]}" >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for ((tries = 0; tries < 50; tries++)); do
        if curl -fs -o /dev/null "http://127.0.0.1:$port/"; then
            say "serving $lab_www on http://127.0.0.1:$port/"
            return
        fi
        pid_matches "$pidfile" "$needle" || break
        sleep 0.2
    done
    cat "$log" >&2
    stop_pid "$pidfile" "$needle"
    rm -f "$pidfile"
    die "the web server for $lab_www did not come up on port $port" \
        "its log is above; is the port already taken?"
}

stop_server() {
    if pid_matches "$pidfile" "$needle"; then
        stop_pid "$pidfile" "$needle"
        say "stopped web server on port $1"
    fi
    rm -f "$pidfile"
}

main "$@"
