#!/usr/bin/env bash
# Builds the Docker image the container tests run, with no registry: a root filesystem holding
# Debian's statically linked busybox (a shell and the usual tools) and the shared libraries a
# dynamically linked `kiln` binary needs, so that node containers can run a bind-mounted
# `kiln agent`. Imported as `kiln-test/busybox:1`. Idempotent.
set -euo pipefail

IMAGE=${KILN_TEST_IMAGE:-kiln-test/busybox:1}
# Debian's busybox-static installs /bin/busybox; a busybox elsewhere on PATH may be dynamic.
# On a Debian machine where we may, install it, so that the test command needs no set-up.
BUSYBOX=/bin/busybox
if [[ ! -x "$BUSYBOX" && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "test-images: installing busybox-static" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
fi
[[ -x "$BUSYBOX" ]] || BUSYBOX=$(command -v busybox || true)
if [[ ! -x "${BUSYBOX:-}" ]]; then
  echo "test-images: a statically linked busybox is needed (Debian package busybox-static)" >&2
  exit 1
fi
command -v docker >/dev/null || { echo "test-images: the docker CLI is needed" >&2; exit 1; }
docker info >/dev/null || { echo "test-images: no Docker Engine answers" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,tmp,etc,kiln/work}
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

# The C library and friends of any dynamically linked Rust binary built on this host (from the
# binary given as $1 if any, else from a program known to link them).
probe=${1:-$(command -v ls)}
ldd "$probe" | grep -o '/[^ ]*' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# The static busybox resolves host names through glibc's NSS modules, loaded at run time.
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
for lib in libgcc_s.so.1 libm.so.6 libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
  # (awk reads all of ldconfig's output: stopping early would kill it with SIGPIPE.)
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|64bit|AArch64/ && !found {print $NF; found = 1}')
  if [[ -n "$path" && ! -e "$root$path" ]]; then
    mkdir -p "$root$(dirname "$path")"
    cp -L "$path" "$root$path"
  fi
done

tar -C "$root" -c . | docker import - "$IMAGE" >/dev/null
echo "test-images: built $IMAGE"
