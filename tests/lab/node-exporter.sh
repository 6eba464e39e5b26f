#!/usr/bin/env bash
# Packs Debian's prometheus-node-exporter binary as an upstream-style release
# (node_exporter-VERSION.linux-amd64.tar.gz plus sha256sums.txt) in the lab's
# www directory, so the role can be tested without internet. Prints VERSION.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    local version
    if version=$(cached_version); then
        printf '%s\n' "$version"
        return
    fi

    new_work_dir
    download_package "$work"
    version=$(upstream_version "$work"/prometheus-node-exporter_*.deb)
    say "packing node_exporter $version from Debian's prometheus-node-exporter"
    pack_release "$work" "$version"
    publish "$work" "$version"
    printf '%s\n' "$version"
}

# VERSION is written last, so its presence means a complete release, and the
# checksum test catches a tarball changed or truncated since.
cached_version() {
    [[ -f $lab_www/VERSION && -f $lab_www/sha256sums.txt ]] || return 1
    (cd "$lab_www" && sha256sum --check --quiet --status sha256sums.txt) || return 1
    cat "$lab_www/VERSION"
}

new_work_dir() {
    mkdir -p "$lab_dir"
    work=$(mktemp -d "$lab_dir/.node-exporter-XXXXXX")
    trap 'rm -rf -- "$work"' EXIT
}

download_package() {
    local options=()
    # apt's sandbox user cannot write to a private temp directory.
    if [[ $EUID -eq 0 ]]; then
        options=(-o APT::Sandbox::User=root)
    fi
    if (cd "$1" && apt-get download -q "${options[@]}" prometheus-node-exporter:amd64 \
        >/dev/null 2>&1); then
        return
    fi
    [[ $EUID -eq 0 ]] ||
        die "apt-get could not download prometheus-node-exporter" \
            "run 'apt-get update' as root, then try again"
    say "refreshing apt package lists"
    apt-get update -q >/dev/null
    (cd "$1" && apt-get download -q "${options[@]}" prometheus-node-exporter:amd64 >/dev/null) ||
        die "apt-get could not download prometheus-node-exporter"
}

# Debian's 1:1.5.0-1+b6 is upstream's 1.5.0: drop the epoch and the revision.
upstream_version() {
    local version
    version=$(dpkg-deb --field "$1" Version)
    version=${version#*:}
    printf '%s\n' "${version%-*}"
}

pack_release() {
    local work=$1 version=$2 name package
    name="node_exporter-$version.linux-amd64"
    package=("$work"/prometheus-node-exporter_*.deb)
    dpkg-deb --extract "${package[0]}" "$work/deb"

    mkdir "$work/$name"
    install -p -m 0755 "$work/deb/usr/bin/prometheus-node-exporter" "$work/$name/node_exporter"
    install -p -m 0644 /usr/share/common-licenses/Apache-2.0 "$work/$name/LICENSE"
    install -p -m 0644 "$work/deb/usr/share/doc/prometheus-node-exporter/NOTICE" \
        "$work/$name/NOTICE"

    # Fixed owners, order and times keep the tarball the same on every rebuild.
    tar --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime="@$(stat -c %Y "$work/$name/node_exporter")" \
        -C "$work" -cf - "$name" | gzip -9n >"$work/$name.tar.gz"
    (cd "$work" && sha256sum "$name.tar.gz") >"$work/sha256sums.txt"
}

publish() {
    local work=$1 version=$2 tarball="node_exporter-$2.linux-amd64.tar.gz"
    mkdir -p "$lab_www"
    rm -f "$lab_www/VERSION"
    mv "$work/$tarball" "$lab_www/$tarball"
    mv "$work/sha256sums.txt" "$lab_www/sha256sums.txt"
    printf '%s\n' "$version" >"$lab_www/VERSION"
}

main "$@"
