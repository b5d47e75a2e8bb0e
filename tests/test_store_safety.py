"""Issue 20, the results store and the report: nothing a user owns is deleted, a result counts once and only
where its own spec puts it, special files never hang or crash a command, interrupted commits are seen.

Each test drives the CLI where a user meets the defect (typer's CliRunner; a subprocess where a hang is the
defect) and failed on the code before its fix. Results are synthetic (tests/report_builders.py, stored where
the runner stores them) unless the test needs a real run; real runs are 1-epoch tiny ones.
"""

from __future__ import annotations

import csv
import contextlib
import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


from bench import store
from bench.spec.registry import get_dataset, parse_method_key
from bench.report.outputs import MANIFEST
from bench.store.record import load_results, write_json_text
from bench.spec.run_spec import SpecOptions, resolve_run_spec
from bench.core.safe_read import MAX_JSON_BYTES
from report_builders import make_result, metrics, write_result
from run_helpers import complete_result

SIZES = {"train": 8, "val": 4, "test": 4}
TINY = ["--methods", "simvp", "--datasets", "mmnist", "--tiny", "--quiet", "--sizes", "train=8,val=4,test=4",
        "--batch-size", "4"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli_spec(seed: int = 0, epochs: int = 1):
    """The spec `bench run` resolves for TINY with ``--epochs epochs`` (what its directory is named after)."""
    return resolve_run_spec(parse_method_key("simvp"), get_dataset("mmnist"), seed,
                            SpecOptions(tiny=True, epochs=epochs, batch_size=4, sizes=SIZES))


def stored(root: Path, seed: int = 0, epochs: int = 1, mse: float = 5.0) -> Path:
    """A complete synthetic result of the CLI's spec, stored where `bench run` looks; its run directory."""
    spec = cli_spec(seed, epochs)
    result = make_result("simvp", seed, metrics(mse), epochs=epochs, tiny=True).replace(spec=spec, spec_hash=spec.hash)
    return write_result(root, result)


def skipped_lines(md: str) -> list[str]:
    if "## Skipped files" not in md:
        return []
    return [line for line in md.split("## Skipped files", 1)[1].split("\n## ", 1)[0].splitlines()
            if line.startswith("- ")]


def counted(md: str) -> str:
    return md.split("Results directory:", 1)[1].split(" complete run(s)", 1)[0]


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: file bytes, link targets, directories (to prove a command wrote nothing)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        out[key] = ("-> " + os.readlink(path)) if path.is_symlink() else ("dir" if path.is_dir() else path.read_bytes())
    return out


# ------------------------------------------------------------------------------------ bench report --out


def test_report_replaces_only_what_a_report_wrote(bench, tmp_path):
    root, out = tmp_path / "results", tmp_path / "out"
    stored(root)
    (out / "figures").mkdir(parents=True)
    mine = {"notes.txt": b"my notes", "figures/overview.png": b"my figure", "report.tex": b"my paper"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    res = bench("report", "-r", root, "-o", out, "--format", "md,csv")  # writes md, csv and figures; not tex
    assert res.exit_code == 0, res.output
    assert all((out / name).read_bytes() == data for name, data in mine.items())
    pngs = sorted(p.name for p in (out / "figures").glob("*.png") if p.name != "overview.png")
    assert pngs and (out / "report.csv").exists()
    # a later report with fewer outputs removes the earlier report's files, and only those
    (out / "report.csv").write_text("my edits")  # edited by the user: theirs now
    res = bench("report", "-r", root, "-o", out, "--no-figures")
    assert res.exit_code == 0, res.output
    assert all((out / name).read_bytes() == data for name, data in mine.items())
    assert (out / "report.csv").read_text() == "my edits"
    assert [p.name for p in (out / "figures").glob("*.png")] == ["overview.png"]
    assert json.loads((out / MANIFEST).read_text())["files"].keys() == {"report.md"}


def test_report_refuses_to_overwrite_a_users_file(bench, tmp_path):
    root, out = tmp_path / "results", tmp_path / "out"
    stored(root)
    out.mkdir()
    (out / "report.md").write_text("my own report")
    res = bench("report", "-r", root, "-o", out)
    err = res.stderr.strip()
    assert res.exit_code == 2 and len(err.splitlines()) == 1 and "report.md" in err and "move it away" in err
    assert (out / "report.md").read_text() == "my own report" and sorted(os.listdir(out)) == ["report.md"]
    # after a report, a user's edit makes the file theirs: refused again, not overwritten
    (out / "report.md").unlink()
    assert bench("report", "-r", root, "-o", out, "--no-figures").exit_code == 0
    (out / "report.md").write_text((out / "report.md").read_text() + "\nmy conclusions\n")
    edited = (out / "report.md").read_text()
    res = bench("report", "-r", root, "-o", out, "--no-figures")
    assert res.exit_code == 2 and "changed since" in res.stderr and (out / "report.md").read_text() == edited
    # a manifest edited to name another file is never obeyed
    (out / "report.md").unlink()
    (tmp_path / "victim.json").write_text("{}")
    (out / MANIFEST).write_text(json.dumps({"files": {"../victim.json": None}}))
    res = bench("report", "-r", root, "-o", out, "--no-figures")
    assert res.exit_code == 2 and "not a bench report manifest" in res.stderr and (tmp_path / "victim.json").exists()


def test_a_report_directory_from_before_the_manifest_is_taken_over(bench, tmp_path):
    """bench 0.1 wrote reports without a manifest: its own files (recognised by their first bytes, and
    the figures its report.md links) are replaced; the user's files beside them are never touched."""
    root, out = tmp_path / "results", tmp_path / "out"
    stored(root)
    assert bench("report", "-r", root, "-o", out, "--format", "md,csv,tex").exit_code == 0
    (out / MANIFEST).unlink()  # as an older bench left it
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures, "the report draws figures for a stored run"
    (out / "figures" / "mine.png").write_bytes(b"my figure")
    (out / "notes.txt").write_text("mine")
    res = bench("report", "-r", root, "-o", out, "--format", "md")
    assert res.exit_code == 0, res.stderr
    assert (out / "figures" / "mine.png").read_bytes() == b"my figure" and (out / "notes.txt").read_text() == "mine"
    assert not (out / "report.csv").exists() and not (out / "report.tex").exists()  # old report files, replaced
    # a report.md that is not bench's (no title line) is still never overwritten
    (out / MANIFEST).unlink()
    (out / "report.md").write_text("# My report\n")
    res = bench("report", "-r", root, "-o", out)
    assert res.exit_code == 2 and "report.md" in res.stderr and (out / "report.md").read_text() == "# My report\n"


# ------------------------------------------------------------------------------------ a result counts once


def test_copies_inside_the_results_tree_are_listed_not_counted(bench, tmp_path):
    root = tmp_path / "results"
    stored(root, mse=5.0)
    shutil.copytree(root / "mmnist" / "simvp", root / "mmnist" / "simvp.bak")
    shutil.copytree(root / "mmnist", root / "mmnist_old")
    shutil.copytree(root / "mmnist", root / "old" / "mmnist")
    os.symlink(root / "mmnist", root / "aaa")  # links to directories already there add nothing, wherever they sort
    os.symlink(root / "mmnist" / "simvp", root / "mmnist" / "simvp.link")
    res = bench("report", "-r", root, "-o", tmp_path / "out", "--no-figures")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "out" / "report.md").read_text()
    assert counted(md).endswith(" 1")  # "1 complete run(s)": not 5 (n = 5, ± 0.00 from one seed)
    lines = skipped_lines(md)
    assert len(lines) == 5 and all("belongs in another directory, mmnist/simvp/" in line for line in lines)
    assert any("simvp.bak" in line for line in lines) and any("old/mmnist" in line for line in lines)


def _schema1(result) -> dict:
    """``result`` as a schema-1 record (the layout before run specs: key, config, metric_convention)."""
    spec = result.spec
    return {"schema": 1, "status": "complete",
            "key": {"dataset": spec.dataset, "method": spec.method, "variant": spec.variant, "overrides": {},
                    "seed": spec.seed},
            "config": {"hparams": dict(spec.hparams), "sizes": dict(spec.sizes), "tiny": spec.tiny, "quick": False,
                       "data_seed": 0, "pred_len": spec.pred_len},
            "dataset": {"name": spec.dataset, "in_frames": 10, "out_frames": 10, "channels": 1, "height": 64,
                        "width": 64},
            "method": {"name": spec.method}, "environment": {}, "timing": {}, "best_epoch": 1,
            "test": {"mse": 7.0, "mae": 9.0}, "metric_convention": "clipped"}


def test_bench_run_never_serves_a_schema1_or_older_spec_result_copied_into_its_directory(bench, tmp_path):
    root = tmp_path / "results"
    other = make_result("simvp", 0, metrics(3.0), epochs=2, tiny=True)  # another configuration (2 epochs)
    old = other.replace(spec_version=0)  # made under older spec rules: its hash is not checked
    here = make_result("simvp", 2, metrics(3.0), epochs=1, tiny=True)  # older rules, its hash edited to this one's
    here = here.replace(spec=cli_spec(2), spec_hash=cli_spec(2).hash, spec_version=0)
    for seed, record in ((0, _schema1(other)), (1, json.loads(write_json_text(old))),
                         (2, json.loads(write_json_text(here)))):
        target = store.run_dir(root, cli_spec(seed))
        target.mkdir(parents=True)
        record = json.loads(json.dumps(record).replace('"seed": 0', f'"seed": {seed}'))
        (target / store.RESULT_FILE).write_text(json.dumps(record))
    res = bench("run", *TINY, "--epochs", 1, "--seeds", "0,1,2", "--results", root)
    assert "kept" not in res.output and res.exit_code == 1
    errors = [json.loads((store.partial_dir(store.run_dir(root, cli_spec(seed))) / "result.json").read_text())["error"]
              for seed in (0, 1, 2)]
    assert all("belongs in another directory" in e for e in errors[:2]) and "spec version 0" in errors[2], errors
    # a schema-1 result where schema 1 put it (results/<dataset>/<label>/seed<k>) still counts, once
    legacy = root / "mmnist" / "simvp" / "seed0"
    legacy.mkdir()
    (legacy / store.RESULT_FILE).write_text(json.dumps(_schema1(other)))
    results, problems = load_results(root)
    # (and seed 2, of older rules, where its recorded hash puts it: the report reads it, `bench run` never serves it)
    assert sorted((r.schema, r.spec.seed) for r in results if r.complete) == [(1, 0), (2, 2)]
    assert len(problems) == 2 and all("belongs in" in p for p in problems)


# ------------------------------------------------------------------------------------ special files


def _specials(config: Path) -> None:
    """Five configurations' seed0/result.json that hang, crash or swamp a naive reader."""
    cases = {"fifo": None, "zero": "/dev/zero", "deep": "[" * 1000 + "]" * 1000,
             "digits": '{"schema": ' + "9" * 5000 + "}", "huge": None}
    for name, content in cases.items():
        seed_dir = config.parent / name / "seed0"
        seed_dir.mkdir(parents=True)
        if name == "fifo":
            os.mkfifo(seed_dir / store.RESULT_FILE)
        elif name == "zero":
            os.symlink(content, seed_dir / store.RESULT_FILE)
        elif name == "huge":  # sparse: 64 MiB + 1 byte long, no disk used
            with open(seed_dir / store.RESULT_FILE, "wb") as fh:
                fh.truncate(MAX_JSON_BYTES + 1)
        else:
            (seed_dir / store.RESULT_FILE).write_text(content)


def _limited():  # a reader that slurps /dev/zero fails at 2 GiB instead of filling the machine
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))


def test_special_files_are_skipped_and_listed_never_read(tmp_path):
    root = tmp_path / "results"
    _specials(stored(root).parent)
    store.audit_path(root, "mmnist", "simvp").parent.mkdir(parents=True)
    os.mkfifo(store.audit_path(root, "mmnist", "simvp"))  # a `bench audit` record, read by the report too
    res = subprocess.run([sys.executable, "-m", "bench", "report", "-r", str(root), "-o", str(tmp_path / "out"),
                          "--no-figures"], env=ENV, capture_output=True, text=True, timeout=120,
                         preexec_fn=_limited)
    assert res.returncode == 0, res.stderr
    lines = skipped_lines((tmp_path / "out" / "report.md").read_text())
    assert len(lines) == 6 and any("audit/mmnist/simvp.json is a FIFO" in line for line in lines), lines
    for name, words in (("fifo", "is a FIFO"), ("zero", "is a character device"), ("deep", "nests"),
                        ("digits", "number that cannot be read"), ("huge", "more than the")):
        assert any(f"/{name}/seed0" in line and words in line for line in lines), (name, lines)
    # the terminal lists them too, whatever the formats (report.csv and report.tex have no place for them)
    csv_only = subprocess.run([sys.executable, "-m", "bench", "report", "-r", str(root), "-o", str(tmp_path / "csv"),
                               "--format", "csv"], env=ENV, capture_output=True, text=True, timeout=120,
                              preexec_fn=_limited)
    assert csv_only.returncode == 0, csv_only.stderr
    told = [line for line in csv_only.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(told) == 6 and any("/fifo/seed0" in line and "is a FIFO" in line for line in told), csv_only.stderr


class Hang(BaseException):
    """A command that did not return in time (a BaseException: no `except Exception` of the harness eats it)."""


@contextlib.contextmanager
def deadline(seconds: int):
    def expire(*_):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_bench_run_refuses_a_fifo_result_or_lock_in_one_line_instead_of_hanging(bench, tmp_path):
    root = tmp_path / "results"
    seed0, seed1 = store.run_dir(root, cli_spec(0)), store.run_dir(root, cli_spec(1))
    seed0.mkdir(parents=True)
    os.mkfifo(seed0 / store.RESULT_FILE)
    os.mkfifo(store.lock_path(seed1))
    with deadline(30):  # opening a FIFO waits for a writer: forever
        res = bench("run", *TINY, "--epochs", 1, "--seeds", "0,1", "--results", root)
    assert res.exit_code == 1, res.output
    errors = [json.loads((store.partial_dir(d) / store.RESULT_FILE).read_text())["error"] for d in (seed0, seed1)]
    assert "is a FIFO, not a regular file" in errors[0] and "\n" not in errors[0]
    assert "run lock" in errors[1] and "is a FIFO" in errors[1] and "\n" not in errors[1]


def test_dangling_links_are_listed(bench, tmp_path):
    root = tmp_path / "results"
    final = stored(root)
    os.symlink(tmp_path / "moved-away", final.with_name("seed1"))  # a run directory whose target is gone
    (final.with_name("seed2")).mkdir()
    os.symlink(tmp_path / "gone.json", final.with_name("seed2") / store.RESULT_FILE)
    res = bench("report", "-r", root, "-o", tmp_path / "out", "--no-figures")
    assert res.exit_code == 0, res.output
    lines = skipped_lines((tmp_path / "out" / "report.md").read_text())
    assert len(lines) == 2 and all("which does not exist" in line for line in lines), lines
    assert any("seed1 is a symbolic link" in line for line in lines)


# ------------------------------------------------------------------------------------ --force and commits


def test_a_symlinked_run_directory_survives_force(bench, tmp_path):
    root = tmp_path / "results"
    final = stored(root, mse=5.0)
    elsewhere = tmp_path / "other-disk" / "seed0"
    elsewhere.parent.mkdir()
    shutil.move(final, elsewhere)
    os.symlink(elsewhere, final)
    res = bench("run", *TINY, "--epochs", 1, "--results", root, "--force")
    assert res.exit_code == 0, res.output
    # the moved-aside link was left as seed0.replaced, and every later --force failed on it
    assert not os.path.lexists(store.replaced_dir(final)) and not final.is_symlink()
    assert complete_result(root).test["mse"] != 5.0
    assert json.loads((elsewhere / store.RESULT_FILE).read_text())["test"]["mse"] == 5.0  # the link's target: kept


def test_ctrl_c_between_the_two_renames_of_force(bench, tmp_path, monkeypatch):
    root = tmp_path / "results"
    final = stored(root, mse=5.0)

    def interrupted_commit(work, target):  # Ctrl-C after the first rename of the swap
        os.replace(target, store.replaced_dir(target))
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "commit_run", interrupted_commit)
    res = bench("run", *TINY, "--epochs", 1, "--results", root, "--force")
    monkeypatch.undo()
    err = res.stderr.strip()
    assert res.exit_code == 130 and len(err.splitlines()) == 1
    assert "its new result replaces the previous one" in err and "previous results are intact" not in err
    new_mse = json.loads((store.partial_dir(final) / store.RESULT_FILE).read_text())["test"]["mse"]
    before = tree(root)
    res = bench("report", "-r", root, "-o", tmp_path / "out", "--format", "csv")
    assert res.exit_code == 0, res.output
    assert tree(root) == before  # the report reads; it repairs nothing
    with open(tmp_path / "out" / "report.csv", newline="") as fh:
        (row,) = [r for r in csv.DictReader(fh) if (r["section"], r["row_kind"], r["metric"], r["method"])
                  == ("comparison", "ours", "mse", "simvp")]
    assert row["n"] == "1" and math.isclose(float(row["raw_mean"]), new_mse, rel_tol=1e-5)
    res = bench("run", *TINY, "--epochs", 1, "--results", root)  # without --force: the new result is committed
    assert res.exit_code == 0 and "kept" in res.output
    assert complete_result(root).test["mse"] == new_mse and not os.path.lexists(store.replaced_dir(final))


def test_the_interrupt_message_says_what_is_on_disk(tmp_path):
    from bench.cli.run import interrupted_message
    from bench.run.options import Outcome

    root, data = tmp_path / "results", get_dataset("mmnist")
    runs = [(cli_spec(seed), data) for seed in (0, 1, 2)]
    waiting = store.partial_dir(stored(root, seed=1))  # seed 1 finished; Ctrl-C came before its commit
    os.replace(waiting.with_name("seed1"), waiting)
    done = [Outcome(runs[0][0], "complete", "")]
    text = interrupted_message(runs, done, root, force=False)
    assert "simvp on mmnist seed 1 had finished: the next `bench run` commits its result" in text
    text = interrupted_message(runs, done, root, force=True)
    assert "1 forced re-run(s) finished and replaced the previous results" in text
    assert "its new result replaces the previous one" in text and "runs not re-run yet are intact" in text
    text = interrupted_message(runs, [], root, force=True)  # interrupted while seed 0 trained
    assert "the previous results are intact" in text and "replaced" not in text


def test_stray_temporary_files_are_never_committed(bench, tmp_path):
    root = tmp_path / "results"
    work = store.partial_dir(store.run_dir(root, cli_spec(0)))
    work.mkdir(parents=True)
    (work / ".last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")  # SIGKILL during a checkpoint write
    # seed 1 finished but was killed before its commit, a temporary file beside its result
    waiting = store.partial_dir(stored(root, seed=1))
    os.replace(waiting.with_name("seed1"), waiting)
    (waiting / ".history.csv.k1ll3d.tmp").write_bytes(b"epoch")
    res = bench("run", *TINY, "--epochs", 1, "--seeds", "0,1", "--results", root)
    assert res.exit_code == 0, res.output
    for seed in (0, 1):
        committed = store.run_dir(root, cli_spec(seed))
        assert (committed / store.RESULT_FILE).is_file() and not list(committed.glob("*.tmp")), os.listdir(committed)


def test_a_finished_run_on_a_read_only_results_directory_is_kept(bench, tmp_path, monkeypatch):
    root = tmp_path / "results"
    stored(root)

    def read_only(self):  # what opening the lock file does there (tests run as root: chmod cannot show it)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(store.RunLock, "acquire", read_only)
    real_temp_file = tempfile.NamedTemporaryFile

    def no_new_file_in_root(*args, **kwargs):  # the results directory's own write probe
        if Path(kwargs.get("dir", "")) == root:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_temp_file(*args, **kwargs)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_new_file_in_root)
    res = bench("run", *TINY, "--epochs", 1, "--results", root)
    assert res.exit_code == 0 and "kept" in res.output and "failed" not in res.output, res.output
    # a run that would have to write there is refused up front, in one line
    res = bench("run", *TINY, "--epochs", 1, "--seeds", "0,1", "--results", root)
    assert res.exit_code == 2 and "is not writable" in res.output and len(res.output.strip().splitlines()) == 1
