"""`carbonshift plan DIR --workers N`: a large batch's JSON lines are written by forked processes, and
the output is the same bytes as one process writes; a worker that fails costs time, never output.

Offline (no remote source: `offline=True`), each worker parses, plans and renders a slice
(`cli/plan_slices.py`); with a remote source (the UK Carbon Intensity API, on by default) the specs are
parsed by workers, planned here and rendered by workers. Both must print what one process prints."""

from __future__ import annotations

import io
import os
import random
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from bench.bench_cli_plan_dir import NOW, spec_text

from carbonshift import runtime
from carbonshift.advisor import advise_many
from carbonshift.cli.parallel_lines import MIN_PARALLEL_ITEMS, can_fork, write_lines
from carbonshift.cli.parallel_map import map_in_children
from carbonshift.cli.plan import _load
from carbonshift.cli.plan_slices import Sliced, plan_in_slices
from carbonshift.clock import FixedClock
from carbonshift.config import Settings, load_settings
from carbonshift.config.jobspec import JobSpec, load_jobspec

from .helpers import REPO, run_cli

CONFIG = str(REPO / "examples" / "config" / "carbonshift.yaml")
SPECS = 1000
needs_fork = pytest.mark.skipif(not can_fork(), reason="workers are forked processes (POSIX)")


def _spec_text(i: int, rng: random.Random) -> str:
    """The bench's specs (durations, windows to the second, five placements, three hardware shapes, a
    tenth interruptible), a tenth with a hardware alternative besides."""
    text = spec_text(i, rng)
    if rng.random() < 0.1:
        text += "hardware_options:\n  - {vcpus: 32, memory_gb: 128, duration: 1h}\n"
    return text


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    specs = tmp_path_factory.mktemp("specs")
    rng = random.Random(1000)
    for i in range(SPECS):
        (specs / f"job-{i:04d}.yaml").write_text(_spec_text(i, rng))
    return specs


def _copied(spec_dir: Path, batch: Path, replaced: dict[str, str]) -> Path:
    """`spec_dir` copied to `batch`, with these files' texts replaced (the bad specs of a test)."""
    batch.mkdir()
    for f in sorted(spec_dir.iterdir()):
        (batch / f.name).write_text(replaced.get(f.name, f.read_text()))
    return batch


def _plan(
    spec_dir: Path, tmp: Path, *extra: str, offline: bool = False, config: str = CONFIG
) -> tuple[int, str, str]:
    """A run with a cache and data directory of its own (a cache another run left would change the
    plans' notices); `offline`: without the UK Carbon Intensity API, so no source is remote."""
    tmp = Path(tempfile.mkdtemp(dir=tmp))
    env = {"CARBONSHIFT_CONFIG": config}
    if offline:
        env["CARBONSHIFT_UKCI_ENABLED"] = "false"
    result = run_cli("plan", str(spec_dir), "--now", NOW.isoformat(), *extra, env=env, tmp=tmp)
    return result.returncode, result.stdout, result.stderr


@needs_fork
@pytest.mark.parametrize("offline", [False, True])
def test_forked_workers_print_the_same_bytes_as_one_process(
    spec_dir: Path, tmp_path: Path, offline: bool
) -> None:
    assert SPECS >= MIN_PARALLEL_ITEMS  # else both runs take the one-process path
    code, serial, err = _plan(spec_dir, tmp_path, "--workers", "1", "--top", "3", offline=offline)
    assert code == 0, err
    assert serial.count("\n") == SPECS and serial.endswith("\n")
    # 3 workers: two forked children, whatever this machine's CPUs; and with every option shown
    code, parallel, err = _plan(spec_dir, tmp_path, "--workers", "3", "--top", "3", offline=offline)
    assert code == 0, err
    assert parallel == serial
    code, every_serial, err = _plan(spec_dir, tmp_path, "--workers", "1", offline=offline)
    assert code == 0, err
    code, every_parallel, err = _plan(spec_dir, tmp_path, "--workers", "2", offline=offline)
    assert code == 0, err
    assert every_parallel == every_serial != serial


@pytest.mark.parametrize("offline", [False, True])
def test_a_bad_spec_in_a_large_batch_still_prints_nothing_and_exits_2(
    spec_dir: Path, tmp_path: Path, offline: bool
) -> None:
    batch = _copied(spec_dir, tmp_path / "batch", {"job-0500.yaml": "name: broken\nduration: soon\n"})
    code, out, err = _plan(batch, tmp_path, "--workers", "3", offline=offline)
    assert code == 2
    assert out == ""
    assert "job-0500.yaml" in err


def _line(i: int) -> str:
    return f'{{"i":{i},"text":"é \\u2603 \udc80 {"x" * (i % 7)}"}}'  # a lone surrogate too


def _written(items: list[int], render: Callable[[int], str], workers: int, errors: str) -> bytes:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors=errors)
    stream.write("before\n")  # held by the stream: written first
    write_lines(items, render, workers, stream)
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue()


@needs_fork
def test_a_slice_whose_child_fails_is_rendered_by_the_parent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the private directory goes
    parent = os.getpid()
    items = list(range(1000))
    assert len(items) >= MIN_PARALLEL_ITEMS  # else every call takes the one-process path

    def crashing_in_children(i: int) -> str:
        if os.getpid() != parent and i == 600:
            os._exit(3)  # a child dies mid-slice, as if killed
        return _line(i)

    def raising_in_children(i: int) -> str:
        if os.getpid() != parent:
            raise RuntimeError("a child's render failed")
        return _line(i)

    expected = ("before\n" + "".join(_line(i) + "\n" for i in items)).encode("utf-8", "surrogateescape")
    assert _written(items, _line, 1, "surrogateescape") == expected  # one process
    assert _written(items, _line, 4, "surrogateescape") == expected
    assert _written(items, crashing_in_children, 4, "surrogateescape") == expected
    assert _written(items, raising_in_children, 3, "surrogateescape") == expected
    assert list(tmp_path.iterdir()) == []  # every worker's file and directory removed


@needs_fork
def test_a_line_that_fails_anywhere_raises_in_the_parent_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def failing(i: int) -> str:
        if i == 900:
            raise ValueError("no line for 900")
        return f'{{"i":{i}}}'

    def unencodable(i: int) -> str:  # a lone surrogate in the last slice only
        return _line(i) if i == 990 else f'{{"i":{i}}}'

    with pytest.raises(ValueError, match="no line for 900"):
        _written(list(range(1000)), failing, 2, "strict")
    with pytest.raises(UnicodeEncodeError):  # as one process: the stream's encoding refuses it
        _written(list(range(1000)), unencodable, 3, "strict")
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_lines(list(range(1000)), unencodable, 3, stream)
    assert stream.buffer.tell() == 0  # nothing written
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("offline", [False, True])
def test_bad_specs_in_a_large_batch_give_the_same_errors_on_forked_parsers(
    spec_dir: Path, tmp_path: Path, offline: bool
) -> None:
    # one bad spec in the parent's slice and two in the children's, whatever the worker count
    bad = {
        "job-0010.yaml": "name: broken\nduration: soon\n",
        "job-0600.yaml": "name: [not, a, name]\nduration: 1h\n",
        "job-0999.yaml": "duration: 1h\nunknown_field: 1\n",
    }
    batch = _copied(spec_dir, tmp_path / "bad-batch", bad)
    code, out, serial_err = _plan(batch, tmp_path, "--workers", "1", offline=offline)
    assert (code, out) == (2, "")
    assert sum(line.startswith("error: ") for line in serial_err.splitlines()) >= 3
    for name in ("job-0010.yaml", "job-0600.yaml", "job-0999.yaml"):
        assert name in serial_err
    code, out, parallel_err = _plan(batch, tmp_path, "--workers", "3", offline=offline)
    assert (code, out) == (2, "")
    assert parallel_err == serial_err


@needs_fork
def test_parsing_on_forked_workers_gives_what_one_process_gives(
    spec_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the private directory goes
    files = sorted(spec_dir.iterdir())
    bad = tmp_path / "job-bad.yaml"
    bad.write_text("name: broken\nduration: soon\n")
    files[700] = bad  # a problem in a child's slice comes back as its message, in place
    parse = partial(_load, at=NOW)
    parent = os.getpid()

    def dying_in_children(path: Path) -> tuple[JobSpec | None, str]:
        if os.getpid() != parent and path == files[800]:
            os._exit(3)  # a child dies mid-slice, as if killed
        return parse(path)

    serial = map_in_children(files, parse, 1)
    assert serial == [parse(f) for f in files]
    assert serial[700][0] is None and "job-bad.yaml" in serial[700][1]
    assert sum(spec is None for spec, _ in serial) == 1
    assert map_in_children(files, parse, 3) == serial  # pickled and unpickled: equal specs, in order
    assert map_in_children(files, dying_in_children, 3) == serial
    assert list(tmp_path.iterdir()) == [bad]  # every worker's file and directory removed


@needs_fork
def test_a_batch_planned_in_slices_is_the_batch_planned_in_one_process(
    spec_dir: Path, tmp_path: Path
) -> None:
    """Offline, every worker parses, plans and renders its slice: the bytes are those of planning the
    whole batch together here; with a remote source the batch is not sliced (each worker would ask
    the remote service again)."""
    files = sorted(spec_dir.iterdir())
    cache = {"path": str(tmp_path / "cache.sqlite")}

    def in_slices(settings: Settings, encoding: str = "utf-8") -> tuple[Sliced | None, bytes]:
        stream = io.TextIOWrapper(io.BytesIO(), encoding=encoding)  # no file: copied by reads and writes
        sliced = plan_in_slices(
            files, at=NOW, signal=settings.signal, settings=settings, top=3, workers=3, stream=stream
        )
        stream.flush()
        buffer = stream.buffer
        assert isinstance(buffer, io.BytesIO)
        return sliced, buffer.getvalue()

    offline = load_settings(Path(CONFIG), ukci_enabled=False, cache=cache)
    sliced, written = in_slices(offline)
    assert sliced is not None and sliced.problems == []
    # the workers open no intensity cache (it keeps only remote answers; opening a new cache file
    # together they raced for SQLite's lock)
    assert not (tmp_path / "cache.sqlite").exists()
    service = runtime.build_service(offline, FixedClock(NOW))
    specs = [load_jobspec(f, now=NOW) for f in files]
    advices = advise_many(specs, catalog=runtime.build_catalog(offline), service=service, now=NOW)
    assert written == "".join(a.to_json_line(top=3) + "\n" for a in advices).encode()
    # a stream in another encoding takes the text and encodes it (here ASCII: the same bytes)
    assert in_slices(offline, "latin-1")[1] == written
    online = load_settings(Path(CONFIG), cache=cache)
    assert online.ukci_enabled and in_slices(online) == (None, b"")


@needs_fork
def test_a_batch_that_cannot_be_planned_fails_as_one_process_fails(spec_dir: Path, tmp_path: Path) -> None:
    """A slice whose planning raises (here: the config's intensity file is missing) sends the batch
    back to one process, which prints the error one process prints."""
    config = tmp_path / "carbonshift.yaml"
    config.write_text(Path(CONFIG).read_text().replace("data/es-scenario.csv", str(tmp_path / "gone.csv")))
    code, out, serial_err = _plan(spec_dir, tmp_path, "--workers", "1", offline=True, config=str(config))
    assert code != 0 and "gone.csv" in serial_err
    assert (code, out, serial_err) == _plan(
        spec_dir, tmp_path, "--workers", "3", offline=True, config=str(config)
    )
