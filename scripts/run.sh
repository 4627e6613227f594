#!/usr/bin/env bash
# Set everything up (idempotent) and start Attention Explorer on the embedded model.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
exec "${EXPLORER_VENV:-$ROOT/.venv}/bin/attention-explorer" "$@"
