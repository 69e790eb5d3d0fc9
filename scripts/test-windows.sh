#!/usr/bin/env bash
# Runs the Windows build (scripts/build-windows.sh) under Wine and checks what a Windows user
# gets: `--version`, `check --config` with a Windows path, `demo --port 0` printing its
# listening line, /healthz, the websocket hello and events, an overlay page, the data dir
# under %APPDATA%\tikrelay, a clean stop on Ctrl-C with the totals saved, and a second start
# that restores them. The checks themselves are in scripts/smoke_check.py (which the release
# workflow also runs natively on each OS).
#
# Headless: no X server is needed for a console program. Each run uses a fresh WINEPREFIX in a
# temp folder (removed at the end), so no state carries over between runs.
#
# Wine 8 (Debian 12) lacks bcryptprimitives.dll, which Rust's standard library imports for
# random numbers; the test builds a stand-in from scripts/wine-bcryptprimitives.c and puts it
# next to a copy of the exe. It is for Wine only: real Windows has the DLL.
#
# Exits 0 when every check passes, 1 with a FAIL line naming the check otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

EXE="target/x86_64-pc-windows-gnu/release/tikrelay.exe"
MINGW_GCC=x86_64-w64-mingw32-gcc

fail() {
  echo "test-windows: FAIL: $*" >&2
  exit 1
}

[ -f "$EXE" ] || fail "$EXE is missing; build it first with scripts/build-windows.sh"

if ! command -v wine >/dev/null 2>&1 || [ ! -x /usr/lib/wine/wine64 ] || ! command -v "$MINGW_GCC" >/dev/null 2>&1; then
  echo "test-windows: installing wine, wine64 and gcc-mingw-w64-x86-64 with apt-get" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
    wine wine64 gcc-mingw-w64-x86-64 python3 >/dev/null
fi
command -v python3 >/dev/null 2>&1 || fail "python3 is needed for the checks"

work=$(mktemp -d "${TMPDIR:-/tmp}/tikrelay-wine.XXXXXX")
export WINEPREFIX="$work/prefix"
export WINEDEBUG=-all
# No Mono or Gecko download prompts for a fresh prefix, and no window: a console program only.
export WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY
cleanup() {
  # Ends this prefix's wineserver and whatever still runs in it, nothing else.
  wineserver -k >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

start=$(date +%s)
mkdir -p "$work/bin"
cp "$EXE" "$work/bin/tikrelay.exe"
"$MINGW_GCC" -shared -O2 -o "$work/bin/bcryptprimitives.dll" \
  scripts/wine-bcryptprimitives.c -ladvapi32 || fail "cannot build the stand-in bcryptprimitives.dll"

echo "test-windows: $(wine --version), fresh prefix in $WINEPREFIX" >&2
# Create the prefix up front so the first relay start is not also Wine's first start.
wineboot --init >/dev/null 2>&1 || fail "wineboot could not create the Wine prefix"
wineserver -w || true

python3 scripts/smoke_check.py --wine "$WINEPREFIX" "$work/bin/tikrelay.exe" "$repo" || fail "see the FAIL line above"
end=$(date +%s)
echo "test-windows: all checks passed in $((end - start)) s"
