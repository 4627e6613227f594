"""The `fewshot` sub-command: accuracy and calibration over a labelled set per number of shots.

    attention-explorer fewshot --model M --examples FILE.csv --demos FILE.csv \\
        --labels Positive,Negative --shots 0,1,2,4 [--template FILE] [--seed N] \\
        [--orders N] [--label-mode gold|flipped|random] [--case-sensitive] \\
        --out RESULT.csv [--items-out ITEMS.csv]

Defaults use the shipped sentiment set in resources/sentiment/ and the course template.
RESULT.csv: shots,n,accuracy,calibrated_accuracy,mean_label_prob,label_mode,order,
accuracy_ci_low,accuracy_ci_high (one row per k, label mode and order, plus the row
pooled over orders with order "all", written when some k has more than one order).
ITEMS.csv: shots,index,label,predicted,prompt,p_<label>...,label_mode,order.
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


def _orders(text: str) -> int:
    """The --orders value; 0, negative or non-numbers raise ExplorerError (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise ExplorerError(f"--orders takes a whole number of orders, not {text!r}.") from None
    if value < 1:
        raise ExplorerError(f"--orders must be at least 1 (one order = the seed's own order); got {value}.")
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
                        "(default: resources/sentiment/reviews.csv)")
    parser.add_argument("--demos", type=Path, default=None,
                        help="demonstration pool, CSV with columns text,label "
                        "(default: resources/sentiment/demos.csv)")
    parser.add_argument("--labels", default="Positive,Negative",
                        help="comma-separated label words (default: %(default)s)")
    parser.add_argument("--shots", default="0,1,2,4,8",
                        help="comma-separated numbers of demonstrations (default: %(default)s)")
    parser.add_argument("--template", type=Path, default=None,
                        help="template file (default: the course format, "
                        "resources/sentiment/course.template)")
    parser.add_argument("--seed", type=_seed, default=0,
                        help="seed for choosing the demonstrations (default: %(default)s)")
    parser.add_argument("--orders", default="1",
                        help="evaluate each k under N seeded demonstration orders (the first "
                        "is the seed's own order; at most k! exist) and add a pooled row "
                        "with order 'all' when some k has several (default: 1)")
    parser.add_argument("--label-mode", default="gold",
                        help="demonstration labels: gold (as in the pool), flipped (every label "
                        "swapped) or random (drawn at random with the seed); several may be "
                        "given separated by commas (default: gold)")
    parser.add_argument("--case-sensitive", action="store_true",
                        help="sum only the declared spelling of each label (and with a "
                        "leading space); by default one-token lower / capitalised / upper "
                        "case forms are summed too")
    parser.add_argument("--out", type=Path, required=True,
                        help="summary CSV, one row per k, label mode and order")
    parser.add_argument("--items-out", type=Path, default=None,
                        help="per-item predictions CSV")
    parser.set_defaults(handler=cmd_fewshot)


def cmd_fewshot(args: argparse.Namespace) -> int:
    labels = fewshot.parse_labels(args.labels)
    shots = fewshot.parse_shots(args.shots)
    orders = _orders(args.orders)
    modes = fewshot.parse_label_modes(args.label_mode)
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
                      calibrate=True, task=stderr_progress(), orders=orders, label_modes=modes,
                      case_insensitive=not args.case_sensitive)
    fewshot.write_summary_csv(args.out, result.rows)
    if args.items_out is not None:
        fewshot.write_items_csv(args.items_out, labels, result.items)
    print(format_table(result))
    return 0


def format_table(result: Any) -> str:
    """The summary as a small text table, with the summed label variants underneath."""
    lines = [f"{'shots':>5} {'labels':>7} {'order':>5} {'n':>4} {'accuracy':>8} {'95% CI':>13} "
             f"{'calibrated':>10} {'p(true)':>7} {'label mass':>10}"]
    for row in result.rows:
        ci = f"{row.accuracy_ci_low:.3f}–{row.accuracy_ci_high:.3f}"
        lines.append(f"{row.shots:>5} {row.label_mode:>7} {row.order:>5} {row.n:>4} "
                     f"{row.accuracy:>8.3f} {ci:>13} {row.calibrated_accuracy:>10.3f} "
                     f"{row.mean_label_prob:>7.3f} {row.label_mass:>10.3f}")
    lines.append("label probabilities summed over: "
                 + "; ".join(v.describe() for v in result.variants))
    if result.content_free:
        lines.append("calibrated on content-free input(s): "
                     + ", ".join(repr(t) for t in result.content_free))
    return "\n".join(lines)
