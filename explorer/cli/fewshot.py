"""The `fewshot` sub-command: accuracy and calibration over a labelled set per number of shots.

    attention-explorer fewshot --model M --examples FILE.csv --demos FILE.csv \\
        --labels Positive,Negative --shots 0,1,2,4 [--template FILE] [--seed N] \\
        --out RESULT.csv [--items-out ITEMS.csv]

Defaults use the shipped sentiment set in explorer/resources/sentiment/ and the course template.
RESULT.csv: shots,n,accuracy,calibrated_accuracy,mean_label_prob (one row per k).
ITEMS.csv: shots,index,label,predicted,prompt,p_<label>... (one row per k and item).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from explorer.cli.common import add_model_options, load, stderr_progress
from explorer.core import fewshot
from explorer.core.errors import ExplorerError


def _seed(text: str) -> int:
    """argparse type: a non-negative integer (numpy seeds cannot be negative)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be a non-negative integer")
    return value


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "fewshot",
        help="accuracy per number of demonstrations over a labelled CSV, with contextual calibration",
        description="Run every item of a labelled CSV with k demonstrations from a separate pool "
        "for each k, and report accuracy, calibrated accuracy (Zhao et al. 2021, content-free "
        "input 'N/A') and the mean probability of the true label.",
    )
    add_model_options(parser)
    parser.add_argument("--examples", type=Path, default=None,
                        help="labelled CSV with columns text,label "
                        "(default: explorer/resources/sentiment/reviews.csv)")
    parser.add_argument("--demos", type=Path, default=None,
                        help="demonstration pool, CSV with columns text,label "
                        "(default: explorer/resources/sentiment/demos.csv)")
    parser.add_argument("--labels", default="Positive,Negative",
                        help="comma-separated label words (default: %(default)s)")
    parser.add_argument("--shots", default="0,1,2,4,8",
                        help="comma-separated numbers of demonstrations (default: %(default)s)")
    parser.add_argument("--template", type=Path, default=None,
                        help="template file (default: the course format, "
                        "explorer/resources/sentiment/course.template)")
    parser.add_argument("--seed", type=_seed, default=0,
                        help="seed for choosing the demonstrations (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="summary CSV, one row per k")
    parser.add_argument("--items-out", type=Path, default=None,
                        help="per-item predictions CSV")
    parser.set_defaults(handler=cmd_fewshot)


def cmd_fewshot(args: argparse.Namespace) -> int:
    labels = fewshot.parse_labels(args.labels)
    shots = fewshot.parse_shots(args.shots)
    examples = fewshot.read_labelled_csv(args.examples or fewshot.shipped("reviews.csv"), labels)
    demos = fewshot.read_labelled_csv(args.demos or fewshot.shipped("demos.csv"), labels)
    template = (fewshot.read_template(args.template) if args.template is not None
                else fewshot.COURSE_TEMPLATE)
    if max(shots) > len(demos):
        raise ExplorerError(
            f"--shots asks for {max(shots)} demonstrations but the pool has only {len(demos)}."
        )
    for path in (args.out, args.items_out):
        if path is not None and not path.parent.exists():
            raise ExplorerError(f"The folder of '{path}' does not exist.")
    loaded = load(args)

    from explorer.backend.fewshot_runner import evaluate

    result = evaluate(loaded, examples, demos, labels, shots, template, args.seed,
                      calibrate=True, task=stderr_progress())
    fewshot.write_summary_csv(args.out, result.rows)
    if args.items_out is not None:
        fewshot.write_items_csv(args.items_out, labels, result.items)
    print(format_table(result))
    return 0


def format_table(result: Any) -> str:
    """The summary as a small text table, with the summed label variants underneath."""
    lines = [f"{'shots':>5} {'n':>4} {'accuracy':>9} {'calibrated':>10} {'p(true)':>8} "
             f"{'label mass':>10}"]
    for row in result.rows:
        lines.append(f"{row.shots:>5} {row.n:>4} {row.accuracy:>9.3f} "
                     f"{row.calibrated_accuracy:>10.3f} {row.mean_label_prob:>8.3f} "
                     f"{row.label_mass:>10.3f}")
    lines.append("label probabilities summed over: "
                 + "; ".join(v.describe() for v in result.variants))
    if result.content_free:
        lines.append("calibrated on content-free input(s): "
                     + ", ".join(repr(t) for t in result.content_free))
    return "\n".join(lines)
