#!/usr/bin/env bash
# Builds, once, the Debian trixie root file system the package tests extract
# as chroot targets, and prints the path of its tarball.
#
# It is a minbase debootstrap plus python3 and python3-apt, because
# ansible-playbook's modules run Python inside the target (bramble needs
# neither), and cron, whose crontab both tools' cron modules use. The tarball's name carries a hash of this script, so editing the
# recipe builds a new one. Tests extract it; they never touch the network.
set -euo pipefail

# shellcheck source=../lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lab/lib.sh"

suite=trixie
packages=(python3 python3-apt gpg)
# Installed by apt after debootstrap, whose own dpkg runs cannot configure
# what cron pulls in (systemd's users).
later_packages=(cron)
store="${BRAMBLE_CACHE:-$HOME/.cache/bramble}/packages"

main() {
    local tarball
    mkdir -p "$store/debs"
    # Test files running at once wait for one build.
    exec 9>"$store/.root.lock"
    flock 9

    tarball="$store/root-$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16).tar.zst"
    if [[ -f $tarball ]]; then
        printf '%s\n' "$tarball"
        return
    fi
    [[ $EUID -eq 0 ]] || die "building the package test root needs root (debootstrap)"

    work=$(mktemp -d "$store/.work-XXXXXX")
    trap 'remove_tree "$work"' EXIT
    say "debootstrap $suite with ${packages[*]} (a few minutes; log in $work/log)"
    if ! debootstrap --variant=minbase --arch=amd64 --cache-dir="$store/debs" \
        --include="$(IFS=,; echo "${packages[*]}")" \
        "$suite" "$work/root" "${BRAMBLE_LAB_MIRROR:-http://deb.debian.org/debian}" \
        >"$work/log" 2>&1; then
        tail -n 30 "$work/log" >&2
        die "debootstrap failed; the lines above are the end of its log"
    fi
    cp /etc/resolv.conf "$work/root/etc/resolv.conf"
    if ! chroot "$work/root" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends ${later_packages[*]}" \
        >>"$work/log" 2>&1; then
        tail -n 30 "$work/log" >&2
        die "installing ${later_packages[*]} failed; the lines above are the end of its log"
    fi
    # The tests bring their own repository; Debian's must not be reachable.
    : >"$work/root/etc/apt/sources.list"
    rm -rf "$work/root"/var/cache/apt/archives/*.deb "$work/root"/var/lib/apt/lists/*

    tar --numeric-owner -C "$work/root" -cf - . | zstd -q -T0 -o "$work/root.tar.zst"
    for old in "$store"/root-*.tar.zst; do
        [[ -e $old ]] && rm -f "$old"
    done
    mv "$work/root.tar.zst" "$tarball"
    printf '%s\n' "$tarball"
}

main "$@"
