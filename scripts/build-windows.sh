#!/usr/bin/env bash
# Cross-builds tikrelay for Windows (x86_64-pc-windows-gnu) on a Debian 12 machine and leaves
# target/x86_64-pc-windows-gnu/release/tikrelay.exe.
#
# No rustup target is needed: Debian's rustc-web/cargo-web (Rust 1.96) and rust-web-src (the
# standard library's source) build std for the target with -Zbuild-std, and the mingw-w64 gcc
# links it and compiles the C parts of dependencies (ring). RUSTC_BOOTSTRAP=1 unlocks -Z on
# this stable compiler. Everything is set through environment variables for this one command,
# so the normal `cargo build`/`cargo test` (rustup's toolchain, host target) is untouched.
#
# Takes about 8 minutes on 2 cores from clean; it runs under `nice` so that others sharing the
# machine keep their cores. Set NICE=0 to run at normal priority.
#
# Usage: scripts/build-windows.sh [extra cargo build args]
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-pc-windows-gnu
MINGW_GCC=x86_64-w64-mingw32-gcc
DEB_CARGO=/usr/bin/cargo
DEB_RUSTC=/usr/bin/rustc
STD_SRC=/usr/lib/rustlib/src/rust/library/Cargo.lock

# Debian's Rust 1.96 comes from bookworm-security; the plain bookworm one (1.85) is too old
# for the crate's dependencies, so check the version rather than just the presence.
need_install=0
if [ ! -x "$DEB_CARGO" ] || [ ! -x "$DEB_RUSTC" ] || [ ! -f "$STD_SRC" ] || ! command -v "$MINGW_GCC" >/dev/null 2>&1; then
  need_install=1
elif ! "$DEB_RUSTC" --version | grep -Eq '^rustc 1\.(9[0-9]|[1-9][0-9]{2})\.'; then
  need_install=1
fi
if [ "$need_install" = 1 ]; then
  echo "build-windows: installing rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 with apt-get" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
    rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 >/dev/null
fi
if ! "$DEB_RUSTC" --version | grep -Eq '^rustc 1\.(9[0-9]|[1-9][0-9]{2})\.'; then
  echo "build-windows: $("$DEB_RUSTC" --version) is too old; rustc-web 1.90 or newer is needed (Debian bookworm-security has 1.96: is it in the apt sources?)" >&2
  exit 1
fi

echo "build-windows: $("$DEB_RUSTC" --version), $("$MINGW_GCC" --version | head -n1)" >&2

# The Debian toolchain, not whatever rustup puts first on PATH (rustup has no std for this
# target here, and its cargo would pick rustup's rustc).
export RUSTC="$DEB_RUSTC"
export RUSTDOC=/usr/bin/rustdoc
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER="$MINGW_GCC"
export CC_x86_64_pc_windows_gnu="$MINGW_GCC"
export AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
# A RUSTFLAGS meant for the host build would also reach the target build; drop it.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS

start=$(date +%s)
nice -n "${NICE:-10}" "$DEB_CARGO" build --release --locked \
  --target "$TARGET" -Zbuild-std=std,panic_abort "$@"
end=$(date +%s)

exe="target/$TARGET/release/tikrelay.exe"
if [ ! -f "$exe" ]; then
  echo "build-windows: cargo finished but $exe is missing" >&2
  exit 1
fi
size=$(stat -c %s "$exe")
echo "build-windows: built $exe ($((size / 1024 / 1024)) MiB, $size bytes) in $((end - start)) s"
