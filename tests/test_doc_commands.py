"""Every shell command in README.md, docs/*.md and gallery/*/README.md is parsed against the CLI: an
option that does not exist, a command that does not exist, a bad choice or a missing argument fails
here. Usage lines (``cnnlens fgsm MODEL IMAGE [-w WEIGHTS] ...``) have each of their options checked.
The cheap commands (reports, layer and model lists on models that need no weights file) run."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cnnlens.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("gallery/*/README.md")])
# shell words that end a command: a pipe, a redirection, a chain, a comment
ENDS = {"|", "||", "&&", ";", ">", ">>", "2>", "&"}
CHEAP = {"report", "layers", "models"}


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str
    args: tuple[str, ...]  # after "cnnlens"
    usage: bool  # a usage line with [optional] parts: only its options are checked

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def _cnnlens_args(words: list[str]) -> list[str] | None:
    """The arguments after ``cnnlens`` (also ``.venv/bin/cnnlens``, ``python -m cnnlens``, ``torchrun ... -m cnnlens``)."""
    for i, word in enumerate(words):
        if word.endswith("/cnnlens") or word == "cnnlens":
            if word == "cnnlens" and i and words[i - 1] != "-m" and not all(re.fullmatch(r"\w+=\S*", w) for w in words[:i]):
                continue
            rest = words[i + 1 :]
            for j, w in enumerate(rest):
                if w in ENDS or re.fullmatch(r"\d?>>?\S*", w):
                    return rest[:j]
            return rest
    return None


def _commands_in(text: str, page: str) -> list[Command]:
    found: list[Command] = []
    lines = text.splitlines()
    in_block, lang, i = False, "", 0
    while i < len(lines):
        raw = lines[i]
        start = i + 1
        if raw.startswith("```"):
            in_block, lang = (not in_block), raw[3:].strip()
            i += 1
            continue
        candidates: list[str] = []
        if in_block and lang != "python":
            joined = raw
            while joined.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                joined = joined.rstrip()[:-1] + " " + lines[i].strip()
            # a usage line goes on over indented lines of [options]
            while "[" in joined and i + 1 < len(lines) and re.match(r"\s+\[", lines[i + 1]):
                i += 1
                joined += " " + lines[i].strip()
            candidates.append(joined.strip().removeprefix("$ "))
        elif not in_block:
            candidates += re.findall(r"`((?:\S+/)?cnnlens [^`]+)`", raw)
        for cand in candidates:
            cand = cand.replace("&lt;", "<").replace("&gt;", ">")
            try:
                words = shlex.split(cand, comments=True)
            except ValueError:
                continue
            args = _cnnlens_args(words)
            if not args or args[0] not in COMMANDS:
                if args and re.fullmatch(r"[a-z]+", args[0]) and not in_block:
                    continue  # prose such as "cnnlens keeps ..." in backticks is not a command
                if args and re.fullmatch(r"[a-z]+", args[0]):
                    found.append(Command(page, start, cand, tuple(args), usage=False))
                continue
            # a usage line, or a command named in prose (`cnnlens fgsm`): only its options are checked
            usage = not in_block or any(("[" in w and not re.search(r"\S\[", w)) or w == "..." for w in args)
            found.append(Command(page, start, cand, tuple(args), usage))
        i += 1
    return found


ALL = [c for p in PAGES for c in _commands_in(p.read_text(), str(p.relative_to(ROOT)))]


def _options(command: click.Command) -> set[str]:
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}


def _check(cmd: Command) -> None:
    name, args = cmd.args[0], list(cmd.args[1:])
    assert name in COMMANDS, f"no command {name!r}: {cmd}"
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    if cmd.usage:
        words = [w.strip("[]|.") for part in args for w in re.split(r"[\[\]|]", part)]
        unknown = sorted({w.split("=")[0] for w in words if re.fullmatch(r"--?[A-Za-z][\w-]*(=\S*)?", w)} - _options(command))
        assert not unknown, f"options {unknown} do not exist: {cmd}"
        return
    try:
        command.make_context(name, args, parent=click.Context(cli, info_name="cnnlens"))
    except click.exceptions.Exit:
        pass
    except click.BadParameter as exc:  # a path that is not on this machine is fine; a bad choice or number is not
        if "does not exist" not in str(exc):
            raise AssertionError(f"{exc.format_message()}: {cmd}") from None
    except click.UsageError as exc:
        raise AssertionError(f"{exc.format_message()}: {cmd}") from None


def test_the_docs_have_commands_to_check() -> None:
    assert len(ALL) > 80
    assert {c.args[0] for c in ALL} >= set(COMMANDS)  # every command appears at least once


@pytest.mark.parametrize("cmd", ALL, ids=lambda c: f"{c.page}:{c.line}")
def test_every_doc_command_parses_against_the_cli(cmd: Command) -> None:
    _check(cmd)


def test_the_checker_catches_what_it_should() -> None:
    bad = [
        "cnnlens visualize squeezenet1_0 -u logits:1 --grid g.png",  # an option that is gone
        "cnnlens dream photo.png --figure f.png",
        "cnnlens frobnicate vgg16",  # no such command
        "cnnlens deconv resnet18 photo.png --method nonsense",  # a bad choice
        "cnnlens fgsm MODEL IMAGE [--epsilon 0.1]",  # a usage line with an unknown option
    ]
    for text in bad:
        (cmd,) = _commands_in(f"```bash\n{text}\n```\n", "test")
        with pytest.raises(AssertionError):
            _check(cmd)
    (good,) = _commands_in("```bash\nOMP_NUM_THREADS=2 cnnlens report vgg16 --json | jq . > out.json  # a comment\n```\n", "test")
    assert good.args == ("report", "vgg16", "--json")
    _check(good)


RUNNABLE = [
    c for c in ALL
    if c.args[0] in CHEAP and not c.usage and not any("/" in a or "$" in a or a.endswith((".pth", ".pt")) for a in c.args[1:])
    and not (c.args[0] == "report" and any(a.startswith("timm/") for a in c.args))
]


@pytest.mark.parametrize("cmd", RUNNABLE, ids=lambda c: f"{c.page}:{c.line}")
def test_the_cheap_doc_commands_run(cmd: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the files they write land here
    result = CliRunner().invoke(cli, list(cmd.args))
    assert result.exit_code == 0, f"{cmd}\n{result.output}"
    assert result.stdout.strip() or any(tmp_path.iterdir())


def test_the_cheap_commands_are_found() -> None:
    assert len(RUNNABLE) >= 8
