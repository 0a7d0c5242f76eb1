#!/bin/sh
# Builds demo/almalinux9-demo.tar.gz: a `docker save`-style archive of a one-layer
# AlmaLinux 9.4 image whose rpm database lists 30 real AlmaLinux 9 packages (names, epochs,
# versions, releases, architectures and source rpms of builds AlmaLinux shipped), so that
# `bulkhead scan` has something real to match against demo/advisories/almalinux9/ with no
# network. See demo/README.md for what is real and what is not.
#
# Run by hand, not by CI, from anywhere:  sh demo/build.sh
# Needs Debian's rpm (rpmbuild, rpm; `apt-get install rpm`) and python3 (stdlib only).
#
# The packages carry metadata only (no files): AlmaLinux's rpms cannot be downloaded on the
# machine this was written on, and a scanner reads the rpm database, not the files. They are
# built with rpmbuild from specs generated below and registered with
# `rpm -i --justdb --nodeps`, so the database is written by rpm itself.
#
# The output is reproducible byte for byte (checked with Debian 12's rpm 4.18): build and
# install times come from SOURCE_DATE_EPOCH, the build host is fixed, and the tar and gzip
# writers use fixed timestamps and orders.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out="$here/almalinux9-demo.tar.gz"
# 2024-10-31: the image is an AlmaLinux 9.4 system last updated that day (see below).
SOURCE_DATE_EPOCH=1730332800
export SOURCE_DATE_EPOCH

for tool in rpmbuild rpm python3; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (apt-get install rpm python3)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One source rpm per line: source name | epoch (0 = none) | version | release | License |
# binary rpms (name:arch). Every EVR is the `fixed` version of the latest AlmaLinux 9
# erratum for that package published before 2024-11-01 (the erratum is named after `#`),
# i.e. a build AlmaLinux really shipped: the image is a system last updated on 2024-10-31.
# Errata for module streams (`.module_el9`) are not updates of these non-modular packages.
# Licence strings are the Fedora-style tags of the el9 spec files, as rpm -qi shows them.
packages() {
    grep -v '^#' <<'EOF'
openssl|1|3.0.7|28.el9_4|ASL 2.0|openssl-libs:x86_64 # ALSA-2024:6783
glibc|0|2.34|100.el9_4.2|LGPLv2+ and LGPLv2+ with exceptions and GPLv2+ and GPLv2+ with exceptions and BSD and Inner-Net and ISC and Public Domain and GFDL|glibc:x86_64 glibc-common:x86_64 glibc-minimal-langpack:x86_64 # ALSA-2024:3339
zlib|0|1.2.11|32.el9_0|zlib and Boost|zlib:x86_64 # ALSA-2022:7314
expat|0|2.5.0|2.el9_4.1|MIT|expat:x86_64 # ALSA-2024:6754
curl|0|7.76.1|29.el9_4.1|MIT|curl-minimal:x86_64 libcurl-minimal:x86_64 # ALSA-2024:5529
libxml2|0|2.9.13|6.el9_4|MIT|libxml2:x86_64 # ALSA-2024:2679
systemd|0|252|32.el9_4.alma.1|LGPLv2+ and MIT|systemd-libs:x86_64 # ALSA-2024:2463
sqlite|0|3.34.1|7.el9_3|Public Domain|sqlite-libs:x86_64 # ALSA-2024:0465
krb5|0|1.21.1|2.el9_4|MIT|krb5-libs:x86_64 # ALSA-2024:6166
gnutls|0|3.8.3|4.el9_4|GPLv3+ and LGPLv2+|gnutls:x86_64 # ALSA-2024:2570
libtasn1|0|4.16.0|8.el9_1|GPLv3+ and LGPLv2+|libtasn1:x86_64 # ALSA-2023:0343
xz|0|5.2.5|8.el9_0|Public Domain|xz-libs:x86_64 # ALSA-2022:4940
ncurses|0|6.2|10.20210508.el9|MIT|ncurses-libs:x86_64 ncurses-base:noarch # ALSA-2023:6698
tar|2|1.34|6.el9_1|GPLv3+|tar:x86_64 # ALSA-2023:0959
bash|0|5.1.8|6.el9_1|GPLv3+|bash:x86_64 # ALSA-2023:0340
less|0|590|4.el9_4|GPLv3+ or BSD|less:x86_64 # ALSA-2024:3513
rpm|0|4.16.1.3|27.el9_3|GPLv2+|rpm:x86_64 rpm-libs:x86_64 # ALSA-2024:0463
dbus|1|1.12.20|7.el9_2.1|(GPLv2+ or AFL) and GPLv2+|dbus-libs:x86_64 # ALSA-2023:4569
libcap|0|2.48|9.el9_2|BSD or GPLv2|libcap:x86_64 # ALSA-2023:5071
pam|0|1.5.1|19.el9|BSD and GPLv2+|pam:x86_64 # ALSA-2024:2438
shadow-utils|2|4.9|8.el9|BSD and GPLv2+|shadow-utils:x86_64 # ALSA-2023:6632
vim|2|8.2.2637|20.el9_1|Vim and MIT|vim-minimal:x86_64 # ALSA-2023:0958
nginx|1|1.20.1|14.el9_2.1.alma.1|BSD|nginx:x86_64 nginx-core:x86_64 nginx-filesystem:noarch # ALSA-2023:5711
EOF
}

# A spec per source rpm; the binary rpms are its subpackages (`%package -n`), the main
# package only when a binary has the source's name. Empty %files: metadata only.
mkdir -p "$work/specs"
packages | while IFS='|' read -r src epoch version release license binaries; do
    binaries=${binaries%%#*}
    spec="$work/specs/$src.spec"
    {
        echo "Name: $src"
        [ "$epoch" = 0 ] || echo "Epoch: $epoch"
        echo "Version: $version"
        echo "Release: $release"
        echo "Summary: $src (Bulkhead demo: AlmaLinux 9 package metadata, no files)"
        echo "License: $license"
        case " $binaries " in *" $src:noarch "*) echo "BuildArch: noarch" ;; esac
        echo "Packager: Bulkhead demo/build.sh (not an AlmaLinux build)"
        echo "%description"
        echo "Metadata of the AlmaLinux 9 build $src-$version-$release, for the Bulkhead demo image."
        for b in $binaries; do
            name=${b%%:*} arch=${b#*:}
            if [ "$name" = "$src" ]; then
                files="%files"
            else
                files="%files -n $name"
                echo "%package -n $name"
                echo "Summary: $name (Bulkhead demo: AlmaLinux 9 package metadata, no files)"
                [ "$arch" = noarch ] && echo "BuildArch: noarch"
                echo "%description -n $name"
                echo "Metadata of the AlmaLinux 9 package $name, for the Bulkhead demo image."
            fi
            echo "$files"
        done
    } >"$spec"
    rpmbuild --quiet --target x86_64 \
        --define "_topdir $work/top" \
        --define 'debug_package %{nil}' \
        --define '_buildhost bulkhead-demo' \
        --define 'use_source_date_epoch_as_buildtime 1' \
        --define 'clamp_mtime_to_source_date_epoch 1' \
        -bb "$spec" >/dev/null
done

# The database, written by rpm: SQLite, as AlmaLinux 9 has it, at /var/lib/rpm.
root="$work/root"
db="$root/var/lib/rpm"
mkdir -p "$db"
rpm -i --force-debian --justdb --nodeps --ignorearch --ignoreos --dbpath "$db" --define '_db_backend sqlite' \
    "$work"/top/RPMS/*/*.rpm
# rpm checkpoints its write-ahead log on close; a leftover log would hold part of the data.
# The -shm file is only the log's index.
if [ -s "$db/rpmdb.sqlite-wal" ]; then
    echo "build.sh: $db/rpmdb.sqlite-wal is not empty" >&2
    exit 1
fi
rm -f "$db/rpmdb.sqlite-wal" "$db/rpmdb.sqlite-shm"
count=$(rpm -qa --dbpath "$db" --define '_db_backend sqlite' | wc -l)
[ "$count" -eq 30 ] || { echo "build.sh: expected 30 packages in the rpmdb, rpm lists $count" >&2; exit 1; }

python3 "$here/pack-docker-archive.py" "$out" \
    --tag bulkhead-demo/almalinux9:2024-10-31 \
    --file "usr/lib/os-release=$here/rootfs/usr/lib/os-release" \
    --symlink "etc/os-release=../usr/lib/os-release" \
    --file "var/lib/rpm/rpmdb.sqlite=$db/rpmdb.sqlite"
ls -l "$out"
