#!/usr/bin/env bash
# Cross-builds arka.exe (arka-agent, lib + `arka` bin) for x86_64-pc-windows-gnu on
# Debian bookworm, using Debian's Rust (rustc-web) with -Zbuild-std and the mingw-w64
# linker. Native builds are untouched: the linker is set through the environment, not a
# .cargo/config, and everything goes to target/windows.
#   1. installs the missing Debian packages (idempotent, quiet on success; needs root or sudo)
#   2. builds release arka.exe
#   3. builds a test-only bcryptprimitives.dll shim for Wine 8 (packaging/windows/
#      bcryptprimitives-shim.c) into target/windows/wine-shim/; never ship it
#   4. with --wine: installs wine64 if missing, copies the shim into $WINEPREFIX's system32
#      and checks that `arka.exe --version` runs
# Prints the path of arka.exe on stdout; everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

wine=0
case "${1:-}" in
    "") ;;
    --wine) wine=1 ;;
    *)
        echo "usage: $0 [--wine]" >&2
        exit 2
        ;;
esac

target=x86_64-pc-windows-gnu
target_dir=target/windows
exe=$PWD/$target_dir/$target/release/arka.exe
shim_dir=$PWD/$target_dir/wine-shim

packages=(rustc-web cargo-web rust-web-src binutils-mingw-w64-x86-64 gcc-mingw-w64-x86-64)
if [ "$wine" = 1 ]; then
    packages+=(wine64)
fi
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" != 0 ]; then
        sudo=(sudo)
    fi
    log=$(mktemp)
    if ! { "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "build-windows: installing ${missing[*]} failed" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi

# Debian's rustc-web ships no prebuilt std for Windows, hence -Zbuild-std (RUSTC_BOOTSTRAP
# lets the stable toolchain take it). /usr/bin/{cargo,rustc} explicitly: a rustup
# toolchain earlier on PATH has no rust-src for this.
RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    /usr/bin/cargo build --quiet --release -p arka-agent \
    -Zbuild-std=std,panic_abort --target "$target" --target-dir "$target_dir"

mkdir -p "$shim_dir"
shim_src=packaging/windows/bcryptprimitives-shim.c
if [ ! -e "$shim_dir/bcryptprimitives.dll" ] || [ "$shim_src" -nt "$shim_dir/bcryptprimitives.dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -s -static-libgcc -Wall -Wextra -Werror \
        -o "$shim_dir/bcryptprimitives.dll" "$shim_src" -lbcrypt
fi

if [ "$wine" = 1 ]; then
    export WINEPREFIX=${WINEPREFIX:-$HOME/.wine} WINEDEBUG=${WINEDEBUG:--all}
    wine64=/usr/lib/wine/wine64
    if [ ! -d "$WINEPREFIX/drive_c/windows/system32" ]; then
        "$wine64" wineboot -i >/dev/null 2>&1 || true
    fi
    # Wine 8 lacks bcryptprimitives.dll (ProcessPrng, imported by Rust's std).
    cp "$shim_dir/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
    if ! version=$("$wine64" "$exe" --version 2>&1); then
        echo "$version" >&2
        echo "build-windows: arka.exe --version failed under Wine ($WINEPREFIX)" >&2
        exit 1
    fi
    echo "wine ($WINEPREFIX): $version" >&2
fi

echo "$exe"
