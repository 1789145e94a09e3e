"""The session around each phase of a BiaPy job (api.py): the run folder locked and claimed once (with
--resume's and --overwrite's checks), the log file, the run's state in run_info.json, and Ctrl-C or
SIGTERM turned into TrainingInterrupted with the command that goes on."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from biapy_cls import __version__
from biapy_cls.errors import TrainingInterrupted

if TYPE_CHECKING:
    from biapy_cls.api import BiaPy

log = logging.getLogger("biapy_cls")


def resume_hint(bia: BiaPy) -> str:
    """The command (or API call) that continues this run."""
    from biapy_cls.workflow import resume_command

    if bia._command:
        return resume_command(bia._args)
    return (f"BiaPy(..., result_dir='{bia.paths.job_dir.parent}', name='{bia.name}', run_id={bia.run_id}, "
            "resume=True).train()")


@contextlib.contextmanager
def run_session(bia: BiaPy, training: bool):
    """Lock and claim the run folder (once), log to the run's log file and record the run's state in
    run_info.json; Ctrl-C and SIGTERM become TrainingInterrupted with the way to go on. Nested calls share one."""
    from biapy_cls.data.plan import data_notes, describe, write_filtered_samples
    from biapy_cls.engine.runtime import run_on_main
    from biapy_cls.logs import close_logging, setup_logging
    from biapy_cls.outputs import write_run_info
    from biapy_cls.run_safety import RunGuard
    from biapy_cls.signals import exit_code, sigterm_as_interrupt, stop_cause

    if bia._active:
        yield
        return
    paths, runtime = bia.paths, bia.runtime
    guard = RunGuard(paths)  # the run lock and --overwrite's safety copy
    try:
        resume_note = None
        if not bia._claimed:
            resume_note = run_on_main(runtime, lambda: claim(bia, training, guard))
        setup_logging(paths.log_file, runtime.is_main)
        bia._active = True
        if runtime.is_main and not bia._claimed:
            log_header(bia, resume_note)
            log.info(describe(bia.plan))
            write_filtered_samples(paths, bia.plan)
        bia._claimed = True
        if runtime.is_main:
            write_run_info(paths, "running", command=bia._command or "Python API", version=__version__,
                           data_notes=data_notes(bia.plan))
        last = paths.last_checkpoint if training else None
        try:
            with sigterm_as_interrupt():
                yield
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (signals.Terminated)
            if runtime.is_main:
                write_run_info(paths, "interrupted")
                guard.ended(last)
            if not training:
                saved = ("Only the test was running and nothing is lost: run the same command again to test:\n  "
                         + (bia._command or "test()"))
            elif paths.last_checkpoint.exists():
                saved = (f"The last completed epoch is saved in '{paths.last_checkpoint}'. Continue with:\n  "
                         f"{resume_hint(bia)}")
            else:
                saved = "No epoch had completed, so there is nothing to resume."
            stopped = TrainingInterrupted(f"stopped by {stop_cause(err)}. {saved}")
            stopped.exit_code = exit_code(err, stopped.exit_code)
            raise stopped from None
        except BaseException:
            if runtime.is_main:
                try:  # on a full disk this write fails too: the error to report is the first one
                    write_run_info(paths, "failed")
                except OSError:
                    log.warning(f"Could not record the failure in '{paths.run_info}'.")
                guard.ended(last)
            raise
        if runtime.is_main:
            write_run_info(paths, "finished")
            guard.ended(None, finished=True)
            log.info(f"Done. Outputs are in '{paths.job_dir}'.")
    finally:
        bia._active = False
        guard.release()
        close_logging()

def claim(bia: BiaPy, training: bool, guard) -> str | None:
    """Lock and claim the output folder (nothing else written yet); when resuming, check that the run
    can go on with the same classes and model."""
    from biapy_cls.engine.checkpoint_match import check_class_names, check_resumable_model
    from biapy_cls.engine.resume import check_resume
    from biapy_cls.models.prepare import run_model_spec
    from biapy_cls.outputs import claim_run

    cfg, paths, plan = bia.cfg, bia.paths, bia.plan

    def same_task(checkpoint: dict) -> None:
        source = str(paths.last_checkpoint)
        check_class_names(checkpoint, plan.class_names, source)
        spec = run_model_spec(cfg.MODEL, plan.spec.ndim, plan.spec.channels, plan.spec.spatial,
                              len(plan.class_names))
        check_resumable_model(checkpoint, spec.to_dict(), cfg.MODEL.dump(), source)

    guard.lock()
    try:
        claim_run(paths, training, bia._resume, bia._overwrite, set_aside=guard.set_aside)
        note = check_resume(cfg, paths, resume_hint(bia), same_task) if bia._resume else None
    except BaseException:
        guard.release(refused=True)
        raise
    guard.clean_temporaries()
    return note


def log_header(bia: BiaPy, resume_note: str | None) -> None:
    import torch

    from biapy_cls.config.settings import workers_capped
    from biapy_cls.outputs import atomic_write_text

    log.info(f"biapy-cls {__version__}: {bia._command or 'Python API, BiaPy(...)'}")
    for notice in bia._notices:
        log.info(f"Note: {notice}")
    if resume_note:
        log.info(resume_note)
    atomic_write_text(bia.paths.config_file, bia.cfg.dump())
    runtime = bia.runtime
    log.info(f"Device: {runtime.device}" + (f", {runtime.world_size} processes" if runtime.distributed else "")
             + f", {torch.get_num_threads()} CPU thread(s) per process"
             + (f"; {runtime.memory}" if runtime.memory else ""))
    if workers_capped(bia.cfg):
        log.warning(workers_capped(bia.cfg))
