"""The ``cnnlens`` command line. Commands live one group per file and import torch lazily,
so ``cnnlens --help`` answers at once."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from ..errors import CnnlensError

# command name -> "module:function"; modules are imported only when a command runs or help is listed
COMMANDS: dict[str, str] = {
    "models": "cnnlens.cli.report:models_command",
    "layers": "cnnlens.cli.report:layers_command",
    "report": "cnnlens.cli.report:report_command",
    "filters": "cnnlens.cli.units:filters_command",
    "patches": "cnnlens.cli.units:patches_command",
    "deconv": "cnnlens.cli.units:deconv_command",
    "visualize": "cnnlens.cli.featvis:visualize_command",
    "dream": "cnnlens.cli.featvis:dream_command",
    "style": "cnnlens.cli.style:style_command",
    "invert": "cnnlens.cli.style:invert_command",
    "fgsm": "cnnlens.cli.attack:fgsm_command",
    "robustness": "cnnlens.cli.attack:robustness_command",
}


def _available(target: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(target.split(":")[0]) is not None


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, and which turns :class:`CnnlensError`
    into one line on stderr and exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, target in COMMANDS.items() if _available(target))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None or not _available(target):
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            from ..errors import did_you_mean

            raise click.UsageError(f"no command {name!r}{did_you_mean(name, COMMANDS)}", ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CnnlensError as exc:
            click.echo(f"Error: {_for_cli(ctx, exc)}", err=True)
            ctx.exit(2)
        except OSError as exc:  # disk full, permission denied while writing: one line, no traceback
            where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
            click.echo(f"Error:{where} {exc.strerror or exc}".strip(), err=True)
            ctx.exit(2)


def _for_cli(ctx: click.Context, exc: CnnlensError) -> str:
    """The error with its API parameter name replaced by the option of the command that ran."""
    text = str(exc)
    if exc.param and ctx.invoked_subcommand:
        command = COMMANDS.get(ctx.invoked_subcommand)
        cmd = ctx.command.get_command(ctx, ctx.invoked_subcommand) if command else None  # type: ignore[attr-defined]
        for param in getattr(cmd, "params", []):
            if param.name == exc.param or (param.name == "as_json" and exc.param == "json"):
                label = max(param.opts, key=len) if isinstance(param, click.Option) else param.human_readable_name
                text = exc.for_option(label)
                break
    return " ".join(text.split("\n")[0].split())


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cnnlens")
def cli() -> None:
    """Look inside convolutional neural networks.

    \b
    Examples:
      cnnlens report vgg16                      per-layer shapes, params, FLOPs, memory, receptive fields
      cnnlens report resnet50 --format json     the same as JSON for scripts
      cnnlens layers googlenet                  layer names to pass to --layer
      cnnlens filters alexnet -w DEFAULT        first-layer filters and their Gabor fits
      cnnlens patches alexnet -w DEFAULT --layer features.8 --data photos/ --deconv
      cnnlens visualize googlenet -w DEFAULT --class flamingo
      cnnlens dream photo.jpg                   DeepDream with squeezenet1_0's ImageNet weights
      cnnlens style photo.jpg starry_night.jpg  Gatys style transfer (VGG19 by default)
      cnnlens fgsm mobilenet_v2 -w DEFAULT photo.jpg --eps 0.007

    Every command has --help with more examples; -w/--weights also takes a .pth file.
    """


def main() -> None:
    cli(prog_name="cnnlens")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
