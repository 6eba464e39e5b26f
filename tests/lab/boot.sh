#!/usr/bin/env bash
# boot.sh NAME SSH_PORT: boots lab guest NAME on a fresh overlay of the lab
# image and returns once pi can log in over ssh on 127.0.0.1:SSH_PORT.
#
# State lives in $lab_dir/run/NAME/: overlay.qcow2, qemu.pid, port, image
# and console.log (the serial console, kept after stop.sh for debugging).
# BRAMBLE_LAB_BOOT_TIMEOUT sets how many seconds to wait for ssh (900: a loaded
# 2-core machine has been seen to need over 15 minutes under TCG).
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    [[ $# -eq 2 ]] || die "usage: boot.sh NAME SSH_PORT"
    local name=$1 port=$2 image run started
    check_name "$name"
    check_port "$port"
    image=$("$lab_scripts/image.sh")
    run="$lab_dir/run/$name"

    "$lab_scripts/stop.sh" "$name"
    mkdir -p "$run"
    if [[ -f $run/console.log ]]; then
        mv "$run/console.log" "$run/console.log.previous"
    fi
    qemu-img create -q -f qcow2 -F qcow2 -b "$image/disk.qcow2" "$run/overlay.qcow2"
    echo "$port" >"$run/port"
    echo "$image" >"$run/image"
    trust_host_key "$port"

    started=$SECONDS
    start_qemu "$name" "$port" "$image" "$run"
    wait_for_ssh "$name" "$port" "$run"
    say "$name is up after $((SECONDS - started)) s: tests/lab/ssh.sh $name"
}

# The guest's host key was made at image build time, so it is trusted before
# first contact. Parallel boots share the file, hence the lock.
trust_host_key() {
    local port=$1 entry="[127.0.0.1]:$1" key
    key=$(cut -d' ' -f1,2 "$lab_host_key.pub")
    (
        flock 8
        touch "$lab_known_hosts"
        grep -vF -- "$entry " "$lab_known_hosts" >"$lab_known_hosts.new" || true
        printf '%s %s\n' "$entry" "$key" >>"$lab_known_hosts.new"
        mv "$lab_known_hosts.new" "$lab_known_hosts"
    ) 8>"$lab_known_hosts.lock"
}

start_qemu() {
    local name=$1 port=$2 image=$3 run=$4
    # Guests hang under KVM on the lab hosts, so TCG is not optional.
    qemu-system-x86_64 -nodefaults -no-user-config -name "bramble-lab-$name" \
        -machine q35 -accel tcg -cpu max -smp 2 -m 1024 \
        -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
        -append "$(<"$image/cmdline") systemd.hostname=$name" \
        -drive "file=$run/overlay.qcow2,format=qcow2,if=virtio,discard=unmap" \
        -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:22" \
        -device virtio-net-pci,netdev=net0 \
        -device virtio-rng-pci \
        -display none -serial "file:$run/console.log" \
        -pidfile "$run/qemu.pid" -daemonize && return
    "$lab_scripts/stop.sh" "$name"
    die "qemu did not start guest $name" "is port $port already taken? see qemu's message above"
}

wait_for_ssh() {
    local name=$1 port=$2 run=$3 deadline options
    deadline=$((SECONDS + ${BRAMBLE_LAB_BOOT_TIMEOUT:-900}))
    mapfile -t options < <(lab_ssh_options)
    until timeout 30 ssh "${options[@]}" -p "$port" pi@127.0.0.1 true 2>/dev/null; do
        if ! pid_matches "$run/qemu.pid" "$run/overlay.qcow2"; then
            boot_failed "$name" "$run" "qemu exited while guest $name was booting"
        fi
        if ((SECONDS >= deadline)); then
            boot_failed "$name" "$run" "guest $name gave no ssh login within" \
                "${BRAMBLE_LAB_BOOT_TIMEOUT:-900} s"
        fi
        sleep 2
    done
}

boot_failed() {
    local name=$1 run=$2
    shift 2
    # The console log holds the guest's terminal escapes; strip them for a readable tail.
    tail -n 40 "$run/console.log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' >&2 || true
    "$lab_scripts/stop.sh" "$name"
    die "$*" "the lines above end the serial console log, $run/console.log; a slow or loaded machine may only need a longer BRAMBLE_LAB_BOOT_TIMEOUT (seconds)"
}

main "$@"
