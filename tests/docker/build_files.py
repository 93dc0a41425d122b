"""Read a Dockerfile and a .dockerignore the way Docker does, far enough to check them without
an engine: build stages and their instructions, COPY sources, and which files of the build
context survive .dockerignore (moby's patternmatcher rules: last match wins, ``!`` re-includes,
a pattern that matches a parent directory matches everything under it)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from string import Template


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of CMD or ENTRYPOINT as a list; an error for the shell form."""
        value = json.loads(self.args)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"line {self.line}: {self.keyword} is not in exec form: {self.args}")
        return value


@dataclass(frozen=True)
class Copy:
    """A COPY or ADD: sources in the build context (or in stage ``from_stage``) and a target."""

    sources: tuple[str, ...]
    dest: str
    from_stage: str | None
    line: int


@dataclass
class Stage:
    """A ``FROM base AS name`` stage and what follows it."""

    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [ins for ins in self.instructions if ins.keyword == keyword]

    def copies(self) -> list[Copy]:
        return [parse_copy(ins) for ins in self.instructions if ins.keyword in ("COPY", "ADD")]


def parse_dockerfile(text: str) -> dict[str, Stage]:
    """The stages of a Dockerfile by name (unnamed ones by index), with global ARG defaults
    substituted in FROM lines."""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for ins in instructions(text):
        if ins.keyword == "ARG" and current is None:
            name, _, default = ins.args.partition("=")
            global_args[name.strip()] = default.strip()
        elif ins.keyword == "FROM":
            words = Template(ins.args).safe_substitute(global_args).split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            current = stages[name] = Stage(name, words[0])
        elif current is not None:
            current.instructions.append(ins)
    return stages


def instructions(text: str) -> Iterator[Instruction]:
    """Every instruction with its first line number; comments and blank lines dropped."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment lines inside a continuation too
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(pending).partition(" ")
        pending = []
        yield Instruction(keyword.upper(), args.strip(), start)


def parse_copy(ins: Instruction) -> Copy:
    """Sources, destination and ``--from`` of a COPY/ADD (shell or JSON form)."""
    words = shlex.split(ins.args)
    from_stage = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        if flag.startswith("--from="):
            from_stage = flag.removeprefix("--from=")
    if words and words[0].startswith("["):
        words = json.loads(ins.args[ins.args.index("[") :])
    if len(words) < 2:
        raise ValueError(f"line {ins.line}: {ins.keyword} needs a source and a destination")
    return Copy(tuple(words[:-1]), words[-1], from_stage, ins.line)


def chain(stages: Mapping[str, Stage], target: str) -> list[Stage]:
    """The stages a target builds on, from the first FROM to the target itself."""
    found = [stages[target]]
    while found[0].base in stages:
        found.insert(0, stages[found[0].base])
    return found


@dataclass(frozen=True)
class ImageConfig:
    """What a target's image runs: ENTRYPOINT, CMD, USER, WORKDIR and VOLUMEs."""

    entrypoint: list[str]
    cmd: list[str]
    user: str
    workdir: str
    volumes: tuple[str, ...]


def image_config(stages: Mapping[str, Stage], target: str) -> ImageConfig:
    """The runtime settings of ``target``, inherited through its stages as Docker does (a
    later ENTRYPOINT clears an inherited CMD)."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    user, workdir = "root", "/"
    volumes: list[str] = []
    for stage in chain(stages, target):
        for ins in stage.instructions:
            if ins.keyword == "ENTRYPOINT":
                entrypoint, cmd = ins.exec_form(), []
            elif ins.keyword == "CMD":
                cmd = ins.exec_form()
            elif ins.keyword == "USER":
                user = ins.args
            elif ins.keyword == "WORKDIR":
                workdir = str(PurePosixPath(workdir, ins.args))
            elif ins.keyword == "VOLUME":
                volumes += json.loads(ins.args) if ins.args.startswith("[") else ins.args.split()
    return ImageConfig(entrypoint, cmd, user, workdir, tuple(volumes))


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool


class DockerIgnore:
    """The patterns of a .dockerignore file, matched as Docker matches them."""

    def __init__(self, text: str) -> None:
        self.patterns: list[_Pattern] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            line = line.removeprefix("!").strip()
            cleaned = str(PurePosixPath(line)).lstrip("/") or "."
            self.patterns.append(_Pattern(_compile(cleaned), exclusion))

    def excludes(self, path: str) -> bool:
        """True if the context path (relative, with ``/``) is left out of the build context."""
        parts = PurePosixPath(path).parts
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # only an exception can undo a match, only a pattern can make one
            if pattern.regex.match(path) or any(pattern.regex.match(p) for p in parents):
                matched = not pattern.exclusion
        return matched


def _compile(pattern: str) -> re.Pattern[str]:
    """moby's pattern syntax: ``*`` within a path element, ``**`` across elements."""
    out, i = "^", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out += ".*" if i == len(pattern) else "(.*/)?"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char in "[]":
            out += char
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + "$")


def context_files(root: Path, ignore: DockerIgnore, under: str = ".") -> list[str]:
    """Files below ``under`` (a context path) that the build context holds, sorted."""
    base = root / under
    if base.is_file():
        return [] if ignore.excludes(under) else [under]
    found = []
    for path in sorted(base.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not ignore.excludes(relative):
            found.append(relative)
    return found
