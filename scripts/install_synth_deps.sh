#!/usr/bin/env bash
# Install the speech synthesizers used by `paraspeechclap synth`.
#   required: espeak-ng, sox (Debian main); chromium + chromium-driver for the serve room's browser test
#   optional: mbrola + voices us1/us2/us3/en1 (Debian contrib/non-free), fetched through a private
#             apt state so the system's apt configuration is left alone. Failure here is not fatal.
# Runs as root (or through sudo when available).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install_synth_deps: needs root (or sudo) to run apt-get" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive

if ! command -v espeak-ng >/dev/null 2>&1 || ! command -v sox >/dev/null 2>&1 \
        || ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends espeak-ng sox libsox-fmt-all chromium chromium-driver
else
    echo "espeak-ng, sox, chromium and chromedriver already installed"
fi

# Recorded human speech for tests/test_mini_real_speech.py (Dutch voice actors of Fish Fillets NG, Debian main).
if ! dpkg -s fillets-ng-data-nl >/dev/null 2>&1; then $SUDO apt-get install -y --no-install-recommends fillets-ng-data-nl || $SUDO sh -c 'apt-get update && apt-get install -y --no-install-recommends fillets-ng-data-nl' || echo "install_synth_deps: fillets-ng-data-nl not installed (real-speech tests will skip)" >&2; fi

install_mbrola() {
    if [ -d /usr/share/mbrola/us1 ] && command -v mbrola >/dev/null 2>&1; then
        echo "mbrola voices already installed"; return 0; fi
    local A; A="$(mktemp -d /tmp/mbrola-apt.XXXXXX)"
    mkdir -p "$A/lists/partial" "$A/archives/partial" "$A/cache" "$A/debs"
    # Reuse the machine's own Debian mirror and keyring (first 'URIs:' of debian.sources, else sources.list).
    local uri keyring
    uri="$(grep -hm1 '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' || true)"
    [ -n "$uri" ] || uri="$(grep -hm1 '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true)"
    [ -n "$uri" ] || uri="http://deb.debian.org/debian"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local suite; suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    echo "deb [signed-by=$keyring] $uri $suite contrib non-free" > "$A/sources.list"
    local O=(-o Dir::Etc::sourcelist="$A/sources.list" -o Dir::Etc::sourceparts=/nonexistent
             -o Dir::State::Lists="$A/lists" -o Dir::Cache::archives="$A/archives"
             -o Dir::Cache="$A/cache" -o Debug::NoLocking=1)
    $SUDO apt-get "${O[@]}" update
    (cd "$A/debs" && $SUDO apt-get "${O[@]}" download mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1)
    $SUDO apt-get install -y "$A"/debs/*.deb
    rm -rf "$A"
}
if [ "${SKIP_MBROLA:-0}" != "1" ]; then
    install_mbrola || echo "install_synth_deps: mbrola voices could not be installed (optional; continuing)" >&2
fi

espeak-ng --version
sox --version
ls /usr/share/mbrola 2>/dev/null || true
