"""`attention-explorer models`: the embedded models and the models in the local HF cache."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("models", help="list embedded models and models in the local HF cache")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from explorer.backend.catalog import embedded_catalog, hub_cache_catalog

    embedded, cached = embedded_catalog(), hub_cache_catalog()
    if args.json:
        print(json.dumps({"embedded": embedded, "hub_cache": cached}, indent=2))
        return 0
    header = (f"{'alias':<10} {'architecture':<18} {'layers':>6} {'heads':>5} {'kv':>3} "
              f"{'context':>7}  positional")
    print("Embedded models:")
    print("  " + header)
    for row in embedded:
        if not row["installed"]:
            print(f"  {row['alias']:<10} not installed: {row['install']}")
            continue
        print(f"  {row['alias']:<10} {row.get('architecture', '?'):<18} {row.get('layers', '?'):>6} "
              f"{row.get('heads', '?'):>5} {row.get('kv_heads', '?'):>3} "
              f"{row.get('context_length', '?'):>7}  {row.get('positional', '?')}"
              + (f", sliding window {row['sliding_window']}" if row.get("sliding_window") else ""))
        if row.get("licence"):
            print(f"  {'':<10} weights under the {row['licence']}")
    print("\nLocal Hugging Face cache:")
    if not cached:
        print("  (none)")
    for row in cached:
        print(f"  {row['hub_id']:<40} {row.get('architecture', '?'):<18} "
              f"layers={row.get('layers', '?')} heads={row.get('heads', '?')} "
              f"positional={row.get('positional', '?')}")
    return 0
