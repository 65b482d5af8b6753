"""The command line mirrors the workflow's stages."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from mocap_refine.cli import main
from mocap_refine.generate import write_generated_clip
from mocap_refine.metrics import METRIC_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


def test_stages_by_hand(tmp_path):
    clip = tmp_path / "gen.txt"
    write_generated_clip(clip, seconds=0.3)
    ref, diag = tmp_path / "r" / "reference.h5", tmp_path / "r" / "diagnostics.csv"
    assert main(["prepare", str(clip), str(ref), str(diag)]) == 0
    acts = tmp_path / "r" / "actions" / "baseline.h5"
    assert main(["actions", str(ref), "baseline", str(acts)]) == 0
    out_h5, out_csv = tmp_path / "r" / "baseline.h5", tmp_path / "r" / "baseline.csv"
    assert main(["evaluate", str(ref), str(acts), str(out_h5), str(out_csv)]) == 0
    assert main(["gather", str(tmp_path / "r" / "comparison.csv"), str(out_csv)]) == 0
    table = pd.read_csv(tmp_path / "r" / "comparison.csv")
    assert list(table.columns) == list(METRIC_COLUMNS) and table.method.tolist() == ["baseline"]


def test_run_one_clip_with_the_workflow_config(tmp_path, monkeypatch):
    """`run` writes the workflow's files for one clip, with the config's
    parameters (here the CI test config: baseline, feedback, invdyn)."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "motions").mkdir()
    write_generated_clip(tmp_path / "motions" / "gen_a.txt", seconds=0.3)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "gen_a", "--config", "config/test_config.yaml", "--threads", "1"]) == 0
    table = pd.read_csv("results/gen_a/comparison.csv")
    assert table.method.tolist() == ["baseline", "feedback", "invdyn"]
    for m in table.method:
        assert Path(f"results/gen_a/{m}.h5").is_file()


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text('{"Loop": "none", "Frames": [[1, 2, 3]]}')
    code = main(["prepare", str(bad), str(tmp_path / "ref.h5"), str(tmp_path / "d.csv")])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and "at least 2 frames" in err
    assert not (tmp_path / "ref.h5").exists()
    code = main(["actions", str(tmp_path / "ref.h5"), "baseline", str(tmp_path / "a.h5"), "--params", "[1]"])
    assert code == 2 and "JSON object" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["actions"])
