#!/usr/bin/env python
"""``ropevit-det infer``: parse and check the flags, launch the batch job in every process, errors as one line.

The flags and their help are in :mod:`ropevit_det.cli.infer_args`; the job is
``camera_trap.detection.batch_job.run_batch_job``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
from datetime import timedelta
from pathlib import Path

import torch
from detectron2.engine import launch
from detectron2.utils import comm

from ropevit_det._deps import require_extras
from ropevit_det.camera_trap.detection.batch_job import run_batch_job
from ropevit_det.camera_trap.detection.job_settings import BatchJobError, BatchJobSettings, list_job_inputs
from ropevit_det.camera_trap.inputs.video import FrameSampling
from ropevit_det.camera_trap.results.output_file import prepare_output, write_problem
from ropevit_det.camera_trap.results.run_lock import OutputLockedError, RunLock
from ropevit_det.camera_trap.species.place_filter import SpeciesFilterError
from ropevit_det.cli.common import config_arg, user_error_message
from ropevit_det.cli.infer_args import build_parser
from ropevit_det.cli.infer_checks import check_args
from ropevit_det.cli.species_args import species_filter_message
from ropevit_det.engine.cpu_threads import share_cpu_cores
from ropevit_det.engine.distributed import shutdown_distributed

_START_OVER = "pass --resume to continue it, or --overwrite (or another --output) to start over"
# The flag behind each setting a BatchJobError can name.
_FLAGS = {
    "glance": "--glance / --glance-threshold",
    "input": "--input",
    "input_root": "--input-root",
    "class_names": "--class-names / --config",
    "weights": "--weights",
    "classifier_weights": "--classifier-weights",
    "coco_gt": "--coco-gt",
    "smooth_sequences": "--smooth-sequences",
    "device": "--device",
    "tiles": "--tiles / --tile-size / --tile-overlap",
}


def job_settings(args: argparse.Namespace, shard: tuple[int, int] | None, sampling: FrameSampling) -> BatchJobSettings:
    """The flags as the job's settings (``--config`` resolved to a file)."""
    # The lock is the command's (main takes it once per run), not each process's.
    names = {f.name for f in dataclasses.fields(BatchJobSettings)} - {
        "config_file",
        "opts",
        "shard",
        "run_id",
        "wait_for_lock",
        "break_lock",
    }
    given = {name: value for name, value in vars(args).items() if name in names}
    return BatchJobSettings(
        **given,
        config_file=config_arg(args.config_file),
        opts=tuple(args.opts),
        render_dir=args.render,
        shard=shard,
        sampling=sampling,
        progress=not args.no_progress,
    )


def error_message(exc: BatchJobError | SpeciesFilterError, settings: BatchJobSettings) -> str:
    """One line naming the flag at fault and the fix."""
    if isinstance(exc, SpeciesFilterError):
        return species_filter_message(exc)
    if exc.argument == "output":
        if isinstance(exc.__cause__, FileExistsError):
            return f"ERROR: {exc}: {_START_OVER}"
        if isinstance(exc.__cause__, (OSError, OutputLockedError)):
            return f"ERROR: {exc}"  # already names the file and the fix
        return (
            f"ERROR: --output {settings.output}: {exc}. Use another --output, or move the file away and start "
            "again without --resume."
        )
    return user_error_message(exc, _FLAGS)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require_extras("infer", args)  # a missing optional package ends the run before any work
    shard, sampling = check_args(args)
    settings = job_settings(args, shard, sampling)
    if args.input_root is not None:
        # Checked here, once, so that a root that does not hold every input ends the run with one message
        # instead of one crash per spawned process; the workers list the same files again under the same root.
        try:
            list_job_inputs(settings)
        except BatchJobError as exc:
            raise SystemExit(error_message(exc, settings)) from None
    if args.num_gpus > 1 and not _on_gpu(args):
        # Several processes on one CPU: each gets its share of the cores, not all of them (oversubscription).
        # (This process only starts the others, so its logging is set up here; the workers set up their own.)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("ropevit_det.infer").info(share_cpu_cores(args.num_gpus))
    lock = None
    try:
        if args.machine_rank == 0:
            # One run per output: held from before any process opens its journal until the final write is done
            # (released on errors too). The launched processes carry its id and check it before writing.
            lock, settings = take_output(args, settings)
        # The last rank to finish may come long after the first (uneven folders, slow disks): the final barrier
        # must not time out the way a training step would, hence a day rather than detectron2's 30 minutes.
        launch(
            worker,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(settings,),
            timeout=timedelta(hours=24),
        )
    finally:
        if lock is not None:
            lock.release()
    return 0


def take_output(args: argparse.Namespace, settings: BatchJobSettings) -> tuple[RunLock, BatchJobSettings]:
    """Lock ``--output`` for this run, then prepare it (once, so that every rank sees the same files)."""
    if Path(args.output).is_dir():
        raise SystemExit(
            f"ERROR: --output {args.output} is a folder, not a results file: give a file path such as "
            f"{Path(args.output) / 'results.json'}"
        )
    lock = RunLock(args.output)
    try:
        lock.acquire(wait=math.inf if args.wait_for_lock else None, break_lock=args.break_lock)
        prepare_output(args.output, resume=args.resume, overwrite=args.overwrite)
    except FileExistsError as exc:
        lock.release()
        raise SystemExit(f"ERROR: {exc}: {_START_OVER}") from None
    except OutputLockedError as exc:
        raise SystemExit(f"ERROR: --output: {exc}") from None
    except OSError as exc:
        lock.release()
        raise SystemExit(f"ERROR: {write_problem(exc, args.output)}") from None
    return lock, dataclasses.replace(settings, run_id=lock.run_id)


def _on_gpu(args: argparse.Namespace) -> bool:
    return (args.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")


def worker(settings: BatchJobSettings) -> None:
    """One process of the run: the batch job, with its errors as one line and a clean exit of the group."""
    rank, world = comm.get_rank(), comm.get_world_size()
    tag = f" [rank {rank}/{world}]" if world > 1 else ""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s")
    if world > 1:
        logging.getLogger("ropevit_det.infer").info("%d CPU threads in this process", torch.get_num_threads())
    try:
        run_batch_job(settings)
    except (BatchJobError, SpeciesFilterError) as exc:
        raise SystemExit(error_message(exc, settings)) from None
    shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
