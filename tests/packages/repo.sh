#!/usr/bin/env bash
# Builds, in DIR, a signed flat apt repository of tiny packages for the apt
# tests: DIR/repo (the .deb files, Packages, Release, InRelease), DIR/key.gpg
# (the signing key as a keyring) and DIR/key.asc (the same key, armored).
#
#   bramble-hello 1.0-1 and 2.0-1   two versions, a conffile, for latest/fixed/purge
#   bramble-dep 1.0-1               pulled in by bramble-tool, for autoremove
#   bramble-tool 1.0-1              depends on bramble-dep
#
# The key is made for this run only and never leaves DIR.
set -euo pipefail

dir=$1
repo="$dir/repo"
mkdir -p "$repo" "$dir/build"

# build NAME VERSION [DEPENDS]
build() {
    local name=$1 version=$2 depends=${3:-} root="$dir/build/$1-$2"
    mkdir -p "$root/DEBIAN" "$root/usr/share/$name" "$root/etc"
    printf '%s\n' "$version" >"$root/usr/share/$name/version"
    printf 'setting=%s\n' "$version" >"$root/etc/$name.conf"
    printf '/etc/%s.conf\n' "$name" >"$root/DEBIAN/conffiles"
    {
        printf 'Package: %s\nVersion: %s\nArchitecture: all\nSection: misc\n' "$name" "$version"
        printf 'Priority: optional\nMaintainer: bramble tests <tests@bramble.invalid>\n'
        [[ -z $depends ]] || printf 'Depends: %s\n' "$depends"
        printf 'Description: %s, a package for the apt tests\n' "$name"
    } >"$root/DEBIAN/control"
    dpkg-deb --root-owner-group -Zgzip --build "$root" "$repo/${name}_${version}_all.deb" \
        >/dev/null
}

build bramble-hello 1.0-1
build bramble-hello 2.0-1
build bramble-dep 1.0-1
build bramble-tool 1.0-1 bramble-dep

export GNUPGHOME="$dir/gnupg"
mkdir -p -m 0700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' \
    --quick-gen-key 'bramble apt tests <tests@bramble.invalid>' ed25519 sign never
gpg --batch --export >"$dir/key.gpg"
gpg --batch --armor --export >"$dir/key.asc"

cd "$repo"
apt-ftparchive packages . >Packages
apt-ftparchive -o APT::FTPArchive::Release::Origin=bramble-tests \
    -o APT::FTPArchive::Release::Label=bramble-tests \
    -o APT::FTPArchive::Release::Suite=tests release . >Release
gpg --batch --quiet --clearsign -o InRelease Release
gpg --batch --quiet -abs -o Release.gpg Release
