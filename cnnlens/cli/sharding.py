"""What every command that walks a folder shares on the command line (:mod:`cnnlens.distributed`).

- Under ``torchrun --nproc-per-node N -m cnnlens ...`` a command runs unchanged: every rank takes
  its share of the images, and rank 0 alone writes ``-o``, prints ``--json`` and shows progress.
- ``--shard I/N -o part-I.json`` computes share I of N (I from 0 to N-1) without a process group
  and writes its partial state; ``cnnlens merge part-*.json`` gives the result of one process.
- A run keeps its partial state in a checkpoint beside ``-o`` (``OUTPUT.partial.json``, or
  ``--checkpoint FILE.json``), saved every ``--checkpoint-every`` seconds; run the same command
  again and it continues from there. The checkpoint is removed once the outputs are written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import CnnlensError

__all__ = ["CHECKPOINT_SUFFIX", "finish_run", "forget", "plan_run", "run_options"]

CHECKPOINT_SUFFIX = ".partial.json"


def run_options(f: Any) -> Any:
    """``--shard I/N``, ``--checkpoint FILE.json`` and ``--checkpoint-every SECONDS``."""
    f = click.option(
        "--checkpoint-every", type=click.FloatRange(min=0), default=600.0, show_default=True,
        help="seconds between saves of the partial state (0: after every batch)",
    )(f)
    f = click.option(
        "--checkpoint", type=click.Path(path_type=Path, dir_okay=False), default=None,
        help=f"where the run keeps its partial state to resume from (.json)  [default: OUTPUT{CHECKPOINT_SUFFIX} with -o]",
    )(f)
    return click.option(
        "--shard", default=None, metavar="I/N",
        help="compute only share I of N (I from 0 to N-1) and write its partial state to -o PART.json; merge the parts with `cnnlens merge`",
    )(f)


def plan_run(*, output: Path | None, shard: str | None, checkpoint: Path | None, every: float, overwrite: bool, as_json: bool) -> tuple[Any, Any]:
    """Check the run options before any work: ``(shard, checkpoint)`` for the API, or a one-line error.

    With ``--shard`` the output is the share's partial state, and it is its own checkpoint (a run
    killed half way continues when started again with the same ``-o``). Otherwise the checkpoint
    is ``--checkpoint`` or ``OUTPUT.partial.json`` beside ``-o`` (none when only ``--json`` is asked).
    """
    from ..distributed import Checkpoint, Shard
    from ._options import check_outputs

    if shard is not None:
        part = Shard.parse(shard)
        if output is None or output.suffix.lower() != ".json":
            got = f", not {output}" if output is not None else ""
            raise CnnlensError(f"--shard writes the share's partial state: give -o PART.json{got} (merge the parts with `cnnlens merge`)")
        if as_json:
            raise CnnlensError("--shard writes a partial state to -o; --json is for the merged result (cnnlens merge PARTS --json)")
        if checkpoint is not None:
            raise CnnlensError("--shard keeps its progress in -o PART.json itself; drop --checkpoint")
        check_outputs([("--output", output, (".json",))], overwrite=True)  # an existing part is continued, or refused by the run
        return part, Checkpoint(output, every=every, replace=overwrite, param="output")
    path = checkpoint if checkpoint is not None else (output.with_name(output.name + CHECKPOINT_SUFFIX) if output is not None else None)
    if path is None:
        return None, None
    check_outputs([("--checkpoint", path, (".json",))], overwrite=True)  # an existing checkpoint is continued
    if output is not None and Path(path).expanduser().resolve() == Path(output).expanduser().resolve():
        raise CnnlensError("--checkpoint and --output are the same file; give two names")
    return None, Checkpoint(Path(path), every=every, replace=overwrite)


def finish_run(result: Any, *, shard: Any, checkpoint: Any) -> bool:
    """After the run: a share's part is written (True: nothing else to save); otherwise False, and
    :func:`forget` removes the checkpoint once the outputs are saved."""
    from ..distributed import is_main

    if shard is None:
        return False
    if is_main():
        click.echo(f"wrote {checkpoint.path} (share {shard}: {result.images_done} of {result.n_items} images; "
                   f"{'complete' if result.complete else 'unfinished'})", err=True)
    return True


def forget(checkpoint: Any) -> None:
    """Remove the checkpoint of a run whose outputs are written (rank 0)."""
    from ..distributed import is_main

    if checkpoint is not None and is_main():
        Path(checkpoint.path).expanduser().unlink(missing_ok=True)


