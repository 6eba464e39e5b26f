#!/usr/bin/env bash
# Builds the Debian trixie amd64 lab guest once and prints its directory.
#
# The directory holds disk.qcow2 (whole-disk ext4, root=/dev/vda), vmlinuz,
# initrd.img and cmdline for qemu's direct kernel boot. Its name carries a
# hash of this recipe, the package list and the lab keys, so editing any of
# them builds a new image. The debootstrapped root file system is cached on
# its own, keyed only by what debootstrap sees, so changing a later step
# rebuilds in seconds instead of rerunning debootstrap.
#
# BRAMBLE_LAB_VARIANT=NAME adds the packages listed in guest-packages-NAME
# (for example "docker") and keeps that image and its root file system in
# their own folder, $lab_dir/variant-NAME/, so that building or pruning one
# variant never touches the base image or another variant.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

suite=trixie
disk_size=8G
# systemd.ssh_auto=0: the guest has no vsock for systemd-ssh-generator to use.
kernel_args="root=/dev/vda rw console=ttyS0 net.ifnames=1 systemd.ssh_auto=0"
# The guest only ever boots on qemu's virtio devices, so the initramfs needs
# just enough to find and mount a virtio disk.
initramfs_modules=(virtio_pci virtio_blk virtio_net virtio_scsi virtio_rng ext4 crc32c_generic)

main() {
    local image rootfs

    select_variant
    mapfile -t packages < <(grep -hv -e '^#' -e '^[[:space:]]*$' "${package_lists[@]}")
    mkdir -p "$store"
    # Concurrent callers (several boot.sh at once) wait for one build.
    exec 9>"$store/.image.lock"
    flock 9

    ensure_keypair "$lab_key" bramble-lab
    ensure_keypair "$lab_host_key" bramble-lab-host
    image="$store/image-$(image_hash)"
    if [[ -f $image/disk.qcow2 ]]; then
        printf '%s\n' "$image"
        return
    fi

    [[ $EUID -eq 0 ]] ||
        die "building the lab image needs root (debootstrap and chroot)" \
            "run it once as root: sudo $0"
    remove_leftovers
    rootfs="$store/rootfs-$(rootfs_hash).tar.zst"
    [[ -f $rootfs ]] || build_rootfs "$rootfs"
    build_image "$rootfs" "$image"
    prune_except "$image" "$rootfs"
    printf '%s\n' "$image"
}

# ensure_keypair PATH COMMENT: an ed25519 key that survives image rebuilds,
# so the inventory and known_hosts stay valid across them.
ensure_keypair() {
    if [[ ! -f $1 ]]; then
        say "generating $1"
        rm -f "$1.new" "$1.new.pub"
        ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1.new"
        mv "$1.new.pub" "$1.pub"
        mv "$1.new" "$1"
    elif [[ ! -f $1.pub ]]; then
        ssh-keygen -y -f "$1" >"$1.pub"
    fi
}

# select_variant: sets package_lists and store for BRAMBLE_LAB_VARIANT.
select_variant() {
    local variant=${BRAMBLE_LAB_VARIANT:-}
    package_lists=("$lab_scripts/guest-packages")
    store=$lab_dir
    [[ -n $variant ]] || return 0
    check_name "$variant"
    [[ -f $lab_scripts/guest-packages-$variant ]] ||
        die "unknown lab variant '$variant'" \
            "BRAMBLE_LAB_VARIANT names a tests/lab/guest-packages-NAME file"
    package_lists+=("$lab_scripts/guest-packages-$variant")
    store="$lab_dir/variant-$variant"
}

image_hash() {
    cat "${BASH_SOURCE[0]}" "${package_lists[@]}" "$lab_key.pub" "$lab_host_key.pub" |
        sha256sum | cut -c1-16
}

# Only what changes debootstrap's output goes into this hash.
rootfs_hash() {
    {
        declare -f debootstrap_root
        printf '%s\n' "$suite" "${packages[@]}"
    } | sha256sum | cut -c1-16
}

# A build killed half-way leaves a .work-* directory; the lock held in main
# guarantees no live build owns one.
remove_leftovers() {
    local dir
    for dir in "$store"/.work-*; do
        [[ -e $dir ]] || continue
        say "removing leftover $dir"
        remove_tree "$dir"
    done
}

prune_except() {
    local path
    for path in "$store"/image-* "$store"/rootfs-*.tar.zst; do
        [[ -e $path && $path != "$1" && $path != "$2" ]] || continue
        say "removing old $path"
        remove_tree "$path"
    done
}

# new_work_dir: a scratch directory on the cache's file system (so results
# can be renamed into place) that is removed however the script exits.
new_work_dir() {
    work=$(mktemp -d "$store/.work-XXXXXX")
    trap 'remove_tree "$work"' EXIT
}

# run_logged LOG COMMAND...: keep chatty output in LOG, show its end on failure.
run_logged() {
    local log=$1
    shift
    if ! "$@" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "'$1' failed; the lines above are the end of its log"
    fi
}

# The first URI of the host's own apt sources that serves the suite: hosts
# without open internet usually reach Debian only through that mirror.
find_mirror() {
    local uri
    if [[ -n ${BRAMBLE_LAB_MIRROR:-} ]]; then
        printf '%s\n' "$BRAMBLE_LAB_MIRROR"
        return
    fi
    for uri in $(host_apt_uris) http://deb.debian.org/debian; do
        uri=${uri%/}
        [[ $uri == */debian ]] || continue
        if curl -fsI --max-time 15 "$uri/dists/$suite/Release" >/dev/null; then
            printf '%s\n' "$uri"
            return
        fi
    done
    die "no apt mirror serving Debian $suite was found" \
        "set BRAMBLE_LAB_MIRROR to a Debian mirror URL"
}

host_apt_uris() {
    local sources=(/etc/apt/sources.list.d/*.sources)
    local lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
    awk '$1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }' "${sources[@]}" \
        2>/dev/null || true
    sed -e 's/\[[^]]*\]//' "${lists[@]}" 2>/dev/null | awk '$1 == "deb" { print $2 }' ||
        true
}

build_rootfs() {
    local target=$1 mirror
    new_work_dir
    mirror=$(find_mirror)
    say "debootstrap $suite from $mirror (a minute or more; log in $work/debootstrap.log)"
    mkdir -p "$lab_dir/debs"
    debootstrap_root "$work/root" "$mirror" "$work/debootstrap.log"

    say "saving root file system to $target"
    tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/root" -cf - . |
        zstd -q -T0 -o "$work/rootfs.tar.zst"
    mv "$work/rootfs.tar.zst" "$target"
    remove_tree "$work"
    trap - EXIT
}

# debootstrap_root ROOT MIRROR LOG: the part of the recipe rootfs_hash covers.
debootstrap_root() {
    local root=$1 mirror=$2 log=$3
    run_logged "$log" debootstrap --variant=minbase --arch=amd64 \
        --cache-dir="$lab_dir/debs" --include="$(IFS=,; echo "${packages[*]}")" \
        "$suite" "$root" "$mirror"

    if compgen -G "$root/usr/bin/python*" >/dev/null; then
        die "python ended up in the guest root file system" \
            "find the package in guest-packages that depends on it"
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
}

build_image() {
    local rootfs=$1 image=$2 root kernel_version
    new_work_dir
    root="$work/root"
    mkdir "$root" "$work/out"
    say "building image $image"
    zstd -q -dc "$rootfs" | tar --numeric-owner --xattrs --xattrs-include='*' -xpf - -C "$root"

    configure_system "$root"
    configure_network "$root"
    configure_users "$root"
    configure_ssh "$root"
    kernel_version=$(installed_kernel "$root")
    make_initramfs "$root" "$kernel_version"

    cp "$root/boot/vmlinuz-$kernel_version" "$work/out/vmlinuz"
    cp "$root/boot/initrd.img-$kernel_version" "$work/out/initrd.img"
    printf '%s\n' "$kernel_args" >"$work/out/cmdline"
    make_disk "$root" "$work/out/disk.qcow2"
    mv "$work/out" "$image"
    remove_tree "$work"
    trap - EXIT
}

configure_system() {
    local root=$1
    echo lab >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tlab\n::1\tlocalhost ip6-localhost\n' \
        >"$root/etc/hosts"
    # Checking a fresh file system at every boot only slows TCG down.
    printf '/dev/vda\t/\text4\terrors=remount-ro\t0\t0\n' >"$root/etc/fstab"

    # An empty machine-id makes every guest generate its own at first boot;
    # firstboot would otherwise stop that boot to ask questions on the console.
    : >"$root/etc/machine-id"
    # systemd would copy dbus's id, which every guest would then share.
    rm -f "$root/var/lib/dbus/machine-id"
    ln -sf /dev/null "$root/etc/systemd/system/systemd-firstboot.service"

    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
}

configure_network() {
    local root=$1
    cat >"$root/etc/systemd/network/20-wired.network" <<'NETWORK'
[Match]
Name=en*

[Network]
DHCP=ipv4
# qemu's user network gives no IPv6 service worth waiting for at boot.
IPv6AcceptRA=no
NETWORK
    systemctl --root="$root" enable --quiet systemd-networkd.service
    # systemd-resolved is not installed, so point at slirp's DNS directly.
    rm -f "$root/etc/resolv.conf"
    echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
}

configure_users() {
    local root=$1 home
    chroot "$root" useradd --create-home --uid 1000 --user-group \
        --groups sudo --shell /bin/bash pi
    # '*' refuses every password yet, unlike a '!' lock, lets keys in.
    chroot "$root" usermod --password '*' pi
    chroot "$root" usermod --password '*' root
    echo 'pi ALL=(ALL:ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/pi"
    chmod 0440 "$root/etc/sudoers.d/pi"
    chroot "$root" visudo -cq -f /etc/sudoers.d/pi

    for home in /root /home/pi; do
        install -d -m 0700 "$root$home/.ssh"
        install -m 0600 "$lab_key.pub" "$root$home/.ssh/authorized_keys"
    done
    chroot "$root" chown -R pi:pi /home/pi/.ssh
}

# The host key is made on the build host so that known_hosts can be written
# before the guest boots and first contact needs no trust-on-first-use.
configure_ssh() {
    local root=$1
    rm -f "$root"/etc/ssh/ssh_host_*
    install -m 0600 "$lab_host_key" "$root/etc/ssh/ssh_host_ed25519_key"
    install -m 0644 "$lab_host_key.pub" "$root/etc/ssh/ssh_host_ed25519_key.pub"
    cat >"$root/etc/ssh/sshd_config.d/bramble-lab.conf" <<'SSHD'
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
SSHD
}

installed_kernel() {
    local kernels=("$1"/boot/vmlinuz-*)
    [[ ${#kernels[@]} -eq 1 && -f ${kernels[0]} ]] ||
        die "expected exactly one kernel in the guest's /boot, found: ${kernels[*]}"
    printf '%s\n' "${kernels[0]##*/vmlinuz-}"
}

make_initramfs() {
    local root=$1 kernel_version=$2 module
    cat >"$root/etc/initramfs-tools/conf.d/bramble-lab" <<'CONF'
MODULES=list
RESUME=none
COMPRESS=gzip
CONF
    : >"$root/etc/initramfs-tools/modules"
    for module in "${initramfs_modules[@]}"; do
        # Some of these are built into the kernel in some releases.
        if chroot "$root" modinfo -k "$kernel_version" "$module" >/dev/null 2>&1; then
            echo "$module" >>"$root/etc/initramfs-tools/modules"
        fi
    done
    run_logged "$work/initramfs.log" chroot "$root" update-initramfs -u -k "$kernel_version"
}

# mke2fs copies the tree straight into the file system, so no loop device
# or mount is needed.
make_disk() {
    local root=$1 disk=$2
    say "writing ext4 file system ($disk_size, sparse)"
    run_logged "$work/mke2fs.log" mke2fs -F -q -t ext4 -L bramble-lab -d "$root" \
        "$work/disk.raw" "$disk_size"
    qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$disk"
    rm -f "$work/disk.raw"
}

main "$@"
