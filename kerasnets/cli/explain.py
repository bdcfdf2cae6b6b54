"""``kerasnets explain EXPERIMENT --out FIG.png``: experiments that explain the networks' design,
as numbers (stdout) and a figure.

    kerasnets explain linear-bottleneck --out fig.png [--seed 0]

``linear-bottleneck``: MobileNetV2's Figure 1 (``kerasnets.explain.linear_bottleneck``): a 2-D
spiral embedded into n dimensions by a random matrix, ReLU, projected back; prints the fraction
of the spiral's points recovered for each n.
"""

import argparse
import logging

from kerasnets.cli.common import add_verbose_argument, call_reporting_errors, configure_logging

log = logging.getLogger("kerasnets.explain")
EXPERIMENTS = ("linear-bottleneck",)


def build_parser(prog="kerasnets explain"):
    """Returns the ``argparse`` parser of ``kerasnets explain``."""
    from kerasnets.explain import DIMENSIONS

    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 on success, 2 on bad input, 1 on other errors.")
    parser.add_argument("experiment", choices=EXPERIMENTS, help="the experiment to run")
    parser.add_argument("--out", required=True, help="PNG file of the figure")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMENSIONS),
                        help="embedding dimensions n (default: %(default)s, the paper's)")
    parser.add_argument("--trials", type=int, default=20,
                        help="random matrices per n averaged in the fractions "
                             "(default: %(default)s)")
    parser.add_argument("--points", type=int, default=1000,
                        help="points on the spiral (default: %(default)s)")
    add_verbose_argument(parser)
    return parser


def run_linear_bottleneck(out, dims, points, trials, seed):
    """Returns the text ``kerasnets explain linear-bottleneck`` prints, after writing ``out``."""
    from kerasnets.explain import linear_bottleneck, plot_linear_bottleneck

    if not str(out).lower().endswith(".png"):
        raise ValueError(f"`--out` must name a .png file; received --out={out!r}")
    result = linear_bottleneck(dims=dims, points=points, trials=trials, seed=seed)
    plot_linear_bottleneck(result, out)
    log.info("wrote %s", out)
    return (f"linear bottleneck (MobileNetV2 Fig. 1), seed {seed}, {trials} matrices per n:\n"
            + result.table())


def main(argv=None, prog="kerasnets explain"):
    """Returns the exit status of ``kerasnets explain`` after printing its numbers."""
    args = build_parser(prog).parse_args(argv)
    configure_logging(verbose=args.verbose)
    status, text = call_reporting_errors(log, run_linear_bottleneck, args.out, args.dims,
                                         args.points, args.trials, args.seed)
    if text is not None:
        print(text)
    return status
