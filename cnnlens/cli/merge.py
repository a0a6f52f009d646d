"""``cnnlens merge``: the result of a sharded run from its parts."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CnnlensError
from ..outputs import RESULT_SUFFIXES
from ._options import check_outputs, finish, json_option, model_stem, output_option, safe_name


@click.command("merge")
@click.argument("parts", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@json_option
@output_option("the figure (.png, .pdf, .svg ...) or .json for the numbers, as the command that made the parts writes them")
def merge_command(parts: tuple[Path, ...], as_json: bool, output: Path | None, overwrite: bool) -> None:
    """Merge the partial states of a sharded run into its result: the same, byte for byte, as one process.

    PARTS are the files written by `cnnlens patches ... --shard I/N -o part-I.json` or `cnnlens
    robustness ... --shard I/N -o part-I.json` for I = 0 ... N-1 (a job array). They must come from
    the same images, model and options, hold no image twice and together cover every image; an
    unfinished part is named (run its share again: it continues where it stopped). -o writes the
    figure or, as .json, the numbers (the patches index, the robustness curves); --json prints
    them. Without either, robustness prints its accuracy table and patches writes
    MODEL-LAYER-patches.png. Patch crops are cut from the image files named in the parts.

    \b
    Examples:
      cnnlens merge part-*.json -o patches.png
      cnnlens merge part-0.json part-1.json part-2.json --json > curves.json
      cnnlens merge part-*.json -o index.json && cnnlens patches resnet50 --from-index index.json --deconv -o deconv.png
    """
    from ..distributed import merge
    from ..units import PatchResult

    for path in parts:
        if not path.is_file():
            raise CnnlensError(f"PARTS: no such file {path}")
    check_outputs([("--output", output, RESULT_SUFFIXES)], overwrite)
    result = merge(list(parts))
    if output is None and not as_json and isinstance(result, PatchResult):  # patches are a picture, robustness a table
        output = Path(f"{model_stem(str(result.info.get('model') or 'model'))}-{safe_name(result.layer)}-patches.png")
        check_outputs([("--output", output, RESULT_SUFFIXES)], overwrite)
    finish(result, as_json=as_json, output=output, overwrite=overwrite, text="" if isinstance(result, PatchResult) else None)
