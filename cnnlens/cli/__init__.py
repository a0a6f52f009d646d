"""The ``cnnlens`` command line. Commands live one group per file and import torch lazily,
so ``cnnlens --help`` answers at once."""

from __future__ import annotations

import importlib
import os
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
    "attribute": "cnnlens.cli.attribution:attribute_command",
    "tuning": "cnnlens.cli.tuning:tuning_command",
    "hierarchy": "cnnlens.cli.tuning:hierarchy_command",
    "invariance": "cnnlens.cli.tuning:invariance_command",
    "similarity": "cnnlens.cli.representations:similarity_command",
    "probe": "cnnlens.cli.representations:probe_command",
    "embed": "cnnlens.cli.representations:embed_command",
    "circuit": "cnnlens.cli.circuits:circuit_command",
    "relevance": "cnnlens.cli.relevance:relevance_command",
    "concepts": "cnnlens.cli.concepts:concepts_command",
    "tcav": "cnnlens.cli.concepts:tcav_command",
    "microscope": "cnnlens.cli.microscope:microscope_command",
    "merge": "cnnlens.cli.merge:merge_command",
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
        resolved = super().resolve_command(ctx, args)
        if resolved[1] is not None:
            _refuse_repeats(resolved[1], args[1:])
        return resolved

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Like click's, but a usage error (a bad option value, a missing argument) is one line too."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:  # bare `cnnlens`: the help
                click.echo(exc.ctx.get_help())
                sys.exit(0)
            command = exc.ctx.command_path if exc.ctx is not None else "cnnlens"
            click.echo(f"Error: {' '.join(exc.format_message().split())} (see {command} --help)", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"Error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

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
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # the model failed on this input (shapes, dtypes): one line unless asked
            if os.environ.get("CNNLENS_TRACEBACK"):
                raise
            message = " ".join(str(exc).split("\n")[0].split()) or type(exc).__name__
            click.echo(f"Error: {type(exc).__name__}: {message} (CNNLENS_TRACEBACK=1 shows where)", err=True)
            ctx.exit(2)


def _refuse_repeats(command: click.Command, args: list[str]) -> None:
    """A single-value option given twice (``-o a.png -o a.json``) is an error, not "the last one wins"."""
    seen: dict[str, str] = {}
    for arg in args:
        if arg == "--":
            break
        word = arg.split("=", 1)[0] if arg.startswith("--") else arg
        for param in command.params:
            if not isinstance(param, click.Option) or param.multiple or param.count:
                continue
            if word in param.opts or word in param.secondary_opts:
                label = max(param.opts, key=len)
                if label in seen:
                    raise CnnlensError(f"{label} is given twice ({seen[label]}, {word}); give it once")
                seen[label] = word


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
      cnnlens report vgg16                       per-layer shapes, params, FLOPs, memory, receptive fields
      cnnlens report resnet50 --json             the same as JSON for scripts
      cnnlens models --json                      every model name, its source and input size
      cnnlens layers googlenet                   layer names for --layer and --unit
      cnnlens filters alexnet                    first-layer filters and their Gabor fits
      cnnlens patches alexnet -u features.8 --data photos/ --deconv
      cnnlens deconv vgg16 cat.jpg -u features.28:42
      cnnlens visualize googlenet -u logits:flamingo -u inception4c:7
      cnnlens dream photo.jpg --model googlenet  DeepDream
      cnnlens style photo.jpg starry_night.jpg   Gatys style transfer (VGG19 by default)
      cnnlens fgsm mobilenet_v2 photo.jpg --eps 0.007
      cnnlens attribute resnet50 photo.jpg --faithfulness    Grad-CAM and friends, with deletion curves
      cnnlens tuning alexnet -l features.0                   orientation tuning with gratings
      cnnlens similarity resnet18 --data photos/ --baseline  CKA of the layers, trained against random init
      cnnlens probe resnet18 --data labelled/                linear probes by depth
      cnnlens circuit squeezenet1_0 -u features.12:5         the units that build a unit (expanded weights)
      cnnlens relevance resnet50 photo.jpg -u layer4         which channels carry the decision (LRP)
      cnnlens concepts resnet50 --data photos/ -l layer3     concepts of a layer (NMF), with patches and importance
      cnnlens tcav resnet50 --concept striped --random random/ -l layer3 -t zebra   does a concept raise a class (TCAV)

    \b
    Conventions:
      MODEL is a name from `cnnlens models`, timm/NAME or path/to/file.py:ClassName; commands about a
      model take it first, commands about an image (dream, style, invert) take --model.
      -w/--weights is DEFAULT (pretrained) where weights exist; -w none is a random init; or a file.
      UNIT is LAYER, LAYER:CHANNEL, LAYER:CHANNEL@Y,X or logits:CLASS.
      --json prints the numbers on stdout; -o writes the figure (or .json); --seed makes runs repeat.
    """


def main() -> None:
    cli(prog_name="cnnlens")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
