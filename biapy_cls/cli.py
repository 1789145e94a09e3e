"""Command line: argv -> BiaPy(...).run_job() (biapy_cls/api.py). The only place that parses flags.

    biapy --config x.yaml --result_dir out --name job --run_id 1 --gpu 0 [KEY VALUE ...]

Kept free of heavy imports so that `--help` and `--version` answer at once.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
import textwrap
from collections.abc import Sequence

from biapy_cls import __version__
from biapy_cls.errors import EXIT_INTERRUPTED, ConfigError, TrainingInterrupted, UserError
from biapy_cls.logs import printable

EPILOG = """\
trailing KEY VALUE pairs override the YAML, e.g.:
  biapy --config x.yaml --result_dir out --name job TRAIN.EPOCHS 5 TRAIN.LR 1e-3

several GPUs:
  python -m torch.distributed.run --nproc_per_node=2 $(which biapy) --config x.yaml ... --gpu 0,1
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biapy",
        description="Train, evaluate and apply a 2D/3D image classifier described by one YAML file "
        "(BiaPy-compatible classification workflow).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # flags are matched by their full names wherever they stand
    )
    parser.add_argument("--config", "-cfg", help="path to the YAML configuration file")
    parser.add_argument(
        "--result_dir", "-rdir", default=os.getenv("HOME", "."),
        help="folder where the job folder is created (default: your home folder)",
    )
    parser.add_argument("--name", "-name", default="unknown_job", help="job name: JOB = RESULT_DIR/NAME")
    parser.add_argument("--run_id", "-rid", type=int, default=1, help="run number inside the job (default 1)")
    parser.add_argument(
        "--gpu", "-gpu", default=None,
        help='GPU ids to use, e.g. "0" or "0,1"; absent or no CUDA available: the CPU',
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace the outputs of a finished run")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--version", action="version", version=f"biapy-cls {__version__}")
    # Accepted for BiaPy compatibility; torch.distributed.run's environment variables take precedence.
    parser.add_argument("--world_size", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--dist_url", default="env://", help=argparse.SUPPRESS)
    parser.add_argument("--dist_backend", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "opts", nargs="*", metavar="KEY VALUE",
        help="config overrides, applied after the YAML; flags may come before or after them",
    )
    return parser


def split_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate the flags (wherever they stand) from the KEY VALUE overrides.

    argparse alone stops reading flags at the first override, so `... TRAIN.EPOCHS 4 --resume` would
    make `--resume` an override. A token is a flag if it is one of the parser's option strings (or
    `--flag=value`, or any `--word`, so that argparse names an unknown one); a flag that takes a value
    takes the next token with it. Everything else, negative numbers included, is an override.
    """
    actions = parser._option_string_actions  # noqa: SLF001 - the parser's own table of option strings
    flags: list[str] = []
    opts: list[str] = []
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name = token.split("=", 1)[0]
        if name in actions or token.startswith("--"):
            flags.append(token)
            action = actions.get(name)
            if action is not None and action.nargs != 0 and "=" not in token and i + 1 < len(tokens):
                flags.append(tokens[i + 1])
                i += 1
        else:
            opts.append(token)
        i += 1
    return flags, opts


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags and the overrides of a command line, flags accepted anywhere."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    flags, opts = split_flags(parser, argv)
    args = parser.parse_args(flags)
    args.opts = opts
    args.argv = argv  # as typed, for the log and the --resume hint
    return args


def print_error(message: str, title: str = "ERROR") -> None:
    """One readable paragraph on stderr, wrapped to the terminal."""
    width = 100
    # Never break a path: users copy it. An indented line is a command to copy and paste: kept whole, since a
    # line break inside it would run half the command.
    paragraphs = [p if p.startswith("  ") else
                  textwrap.fill(p, width=width, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False)
                  for p in message.split("\n")]
    print(printable(f"{title}: " + "\n".join(paragraphs)), file=sys.stderr, flush=True)


def _rank() -> int:
    """This process's rank under torch.distributed.run (0 when run alone)."""
    return int(os.environ.get("RANK", "0") or 0)


# errno -> what to call it: the machine's problem, not a bug (a full disk during a checkpoint save, ...)
DISK_ERRORS = {errno.ENOSPC: "The disk is full", errno.EDQUOT: "The disk quota is exceeded",
               errno.EROFS: "The file system is read-only", errno.EACCES: "Permission denied",
               errno.EPERM: "Operation not permitted (an immutable file or folder?)"}


def worker_message(text: str) -> str:
    """The tool's own message out of an error re-raised from a DataLoader worker, which torch wraps in
    "Caught DataError in DataLoader worker process 0. Original Traceback ...": the same one paragraph
    as when loading in memory."""
    if "Original Traceback" not in text:
        return text
    last = None
    for last in re.finditer(r"^biapy_cls\.[\w.]+: ", text, re.M):
        pass
    return text[last.end():].strip() if last else text


def _report(err: UserError) -> None:
    """Print a user error once per job: rank 0 prints it; other ranks only print errors of their own."""
    if "Original Traceback" in str(err):
        err.args = (worker_message(str(err)),)
    rank = _rank()
    if rank == 0:
        print_error(str(err))
    elif not getattr(err, "reported_by_main", False) and not isinstance(err, ConfigError):
        print_error(f"[rank {rank}] {err}")  # config errors are the same on every rank: rank 0 tells


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.config:
        build_parser().print_usage(sys.stderr)
        print_error("--config is required: give the path of your YAML file, e.g. --config my_classification.yaml")
        return 2
    if not str(args.result_dir).strip():  # the API would read it as "write no files" and speak of train()
        print_error("--result_dir is empty: give the folder to write results, checkpoints and logs to, e.g. "
                    "--result_dir results (left out, it is your home folder).")
        return 2
    biapy = None
    try:
        # Imported here, not at the top: the API pulls in torch. The CLI is a thin layer over it.
        from biapy_cls.api import BiaPy

        biapy = BiaPy(args.config, result_dir=args.result_dir, name=args.name, run_id=args.run_id, gpu=args.gpu,
                      verbose=True, overrides=args.opts, resume=args.resume, overwrite=args.overwrite,
                      argv=args.argv)
        biapy.run_job()
        return 0
    except UserError as err:
        if args.debug:
            raise
        _report(err)
        return err.exit_code
    except TrainingInterrupted as err:
        if args.debug:
            raise
        if _rank() == 0:
            print_error(str(err), title="INTERRUPTED")
        return err.exit_code
    except KeyboardInterrupt as err:
        if args.debug:
            raise
        from biapy_cls.signals import exit_code, stop_cause

        print_error(f"stopped by {stop_cause(err)} before training started; nothing was lost.", title="INTERRUPTED")
        return exit_code(err, EXIT_INTERRUPTED)
    except OSError as err:
        if args.debug:
            raise
        if err.errno not in DISK_ERRORS:
            return _internal_error(err)
        print_error(f"{DISK_ERRORS[err.errno]}: writing '{err.filename or 'a result file'}' failed ({err.strerror}). "
                    "Free space or fix the permissions, or choose another --result_dir; an interrupted training run "
                    "continues from its last completed epoch with --resume.")
        return 2
    except Exception as err:  # noqa: BLE001 - last line of defence: no traceback for users
        if args.debug:
            raise
        return _internal_error(err)
    finally:
        if biapy is not None:
            biapy.close()


def _internal_error(err: BaseException) -> int:
    where = f"[rank {_rank()}] " if _rank() else ""
    print_error(
        f"{where}unexpected internal error ({type(err).__name__}: {err}). This is a bug in biapy-cls, not in your "
        "data. Re-run with --debug to see the full traceback and please report it."
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
