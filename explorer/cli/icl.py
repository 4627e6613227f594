"""The `icl` sub-command: why one few-shot prompt predicts what it does.

    attention-explorer icl --model M --query TEXT --labels A,B --shots K [--seed S] \\
        [--demos F.csv] [--template T] [--case-sensitive] --out R.json

The K demonstrations are chosen and ordered exactly as `fewshot` chooses them for the
same seed and shot count (``fewshot.choose_demonstrations``). R.json holds ``prompt``,
``label_probs`` {label: p}, ``demo_effects`` [{index, text, label, leave_out_probs,
flipped_probs}] and ``anchor_flow`` {S_wp, S_pq, S_ww} (one value per layer).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from explorer.cli.common import add_model_options, load, stderr_progress, write_json
from explorer.core import fewshot
from explorer.core.errors import ExplorerError, PromptError
from explorer.core.icl import IclReport


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "icl",
        help="demonstration effects and label-anchor flows of one few-shot prompt",
        description="Build a K-shot prompt for a query (demonstrations chosen like `fewshot` "
        "does for the same seed), then measure the label probabilities with each "
        "demonstration left out and with its label flipped, and the label-words-as-anchors "
        "flows S_wp, S_pq, S_ww per layer (Wang et al. 2023).",
    )
    add_model_options(parser)
    parser.add_argument("--query", required=True, help="the text to classify")
    parser.add_argument("--labels", required=True, help="comma-separated label words, e.g. Positive,Negative")
    parser.add_argument("--shots", required=True, help="number of demonstrations K")
    parser.add_argument("--seed", default="0", help="seed for choosing the demonstrations (default: 0)")
    parser.add_argument("--demos", type=Path, default=None,
                        help="demonstration pool, CSV with columns text,label "
                        "(default: resources/sentiment/demos.csv)")
    parser.add_argument("--template", type=Path, default=None,
                        help="template file (default: the course format)")
    parser.add_argument("--case-sensitive", action="store_true",
                        help="sum only the declared spelling of each label (default: one-token "
                        "case variants are summed too)")
    parser.add_argument("--out", type=Path, required=True, help="result JSON")
    parser.set_defaults(handler=cmd_icl)


def _whole(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ExplorerError(f"{flag} takes a whole number, not {text!r}.") from None
    if value < 0:
        raise ExplorerError(f"{flag} cannot be negative; got {value}.")
    return value


def cmd_icl(args: argparse.Namespace) -> int:
    if not args.query.strip():
        raise PromptError("The query is empty: give the text to classify with --query.")
    labels = fewshot.parse_labels(args.labels)
    shots = _whole(args.shots, "--shots")
    seed = _whole(args.seed, "--seed")
    pool = fewshot.read_labelled_csv(args.demos or fewshot.shipped("demos.csv"), labels)
    template = (fewshot.read_template(args.template) if args.template is not None
                else fewshot.COURSE_TEMPLATE)
    if shots > len(pool):
        raise ExplorerError(f"--shots asks for {shots} demonstrations but the pool has only {len(pool)}.")
    demos = fewshot.choose_demonstrations(pool, shots, seed, labels)
    prompt = fewshot.build_prompt(template, demos, args.query)
    loaded = load(args)

    from explorer.backend.anchor_saliency import label_anchor_flow
    from explorer.backend.fewshot_runner import label_variants
    from explorer.backend.icl_runner import demo_effects

    if not loaded.info.causal:
        raise ExplorerError(f"'{loaded.info.name}' is an encoder: it does not predict a next "
                            "token, so it has no label probabilities.")
    task = stderr_progress()
    variants = label_variants(loaded, labels, case_insensitive=not args.case_sensitive)
    effects = demo_effects(loaded, prompt, template, variants, task.sub(0.0, 0.5))
    flow = label_anchor_flow(loaded, prompt, template, variants, task.sub(0.5, 1.0))
    report = IclReport(prompt, labels, effects.base_probs, effects, flow)
    write_json(args.out, report.to_json())
    print(format_report(report))
    return 0


def format_report(report: IclReport) -> str:
    """A short text summary: label probabilities, then Δ p per demonstration."""
    labels = report.labels
    lines = ["label probabilities: " + ", ".join(
        f"{label} {p:.4f}" for label, p in zip(labels, report.label_probs, strict=True))]
    if report.effects.effects:
        lines.append(f"{'demo':>4} {'label':>10} " + " ".join(
            f"{'Δ leave-out ' + label:>20} {'Δ flipped ' + label:>18}" for label in labels))
        for effect in report.effects.effects:
            cells = []
            for index in range(len(labels)):
                left = effect.leave_out_probs[index] - report.label_probs[index]
                flipped = ("" if effect.flipped_probs is None
                           else f"{effect.flipped_probs[index] - report.label_probs[index]:+.4f}")
                cells.append(f"{left:>+20.4f} {flipped:>18}")
            lines.append(f"{effect.index:>4} {effect.label:>10} " + " ".join(cells))
    lines.append(f"anchor flow: loss of {report.flow.loss_label!r}, "
                 f"{len(report.flow.label_positions)} label words, target token {report.flow.target}")
    return "\n".join(lines)
