"""The shipped models against the team's reference files, with the comparator `make models` uses."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from cllmh.detect import Detection
from footage import MODELS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import compare_models

REFERENCE = Path(os.environ.get("CLLMH_REFERENCE_MODELS", MODELS.parents[2] / "shared" / "models"))


def test_a_confident_detection_needs_a_counterpart_of_the_same_label_place_and_score() -> None:
    person = Detection("person", 0.9, (10, 10, 50, 110))
    assert compare_models.unmatched([person], [Detection("person", 0.85, (12, 10, 52, 112))]) == []
    assert compare_models.unmatched([person], [Detection("car", 0.9, (10, 10, 50, 110))]) == [person]
    assert compare_models.unmatched([person], [Detection("person", 0.9, (40, 10, 80, 110))]) == [person]
    assert compare_models.unmatched([person], [Detection("person", 0.5, (10, 10, 50, 110))]) == [person]


def test_shipped_models_match_their_checksums_and_are_equivalent_to_the_reference() -> None:
    if not (REFERENCE / "SHA256SUMS").is_file():
        pytest.skip(f"no reference models at {REFERENCE} (set CLLMH_REFERENCE_MODELS)")
    results = {r.name: r for r in compare_models.compare_dirs(REFERENCE, MODELS, allow_new=True)}
    assert all(r.ok for r in results.values()), results
    # The float CenterNet gives exactly the reference's outputs; the int8 SSD detects the same people.
    centernet = results["centernet_mnv3_coco_fp32.tflite"]
    assert centernet.verdict == "identical" or centernet.detail == "max output diff 0.00e+00", centernet
    assert results["ssdlite_anchors.npy"].verdict == "identical"
    assert results["ssdlite_mnv2_person_postprocess_int8.tflite"].verdict == "new"


def _sums(directory: Path, *names: str) -> None:
    lines = (f"{hashlib.sha256((directory / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    (directory / "SHA256SUMS").write_text("".join(lines))


def test_a_wrong_checksum_or_a_different_model_under_the_same_name_is_reported(tmp_path: Path) -> None:
    reference, candidate = tmp_path / "ref", tmp_path / "new"
    name = "ssdlite_mnv2_person_int8.tflite"
    for directory in (reference, candidate):
        directory.mkdir()
        shutil.copy(MODELS / "ssdlite_anchors.npy", directory)
    shutil.copy(MODELS / name, reference / name)
    shutil.copy(MODELS / "ssdlite_mnv2_person_postprocess_int8.tflite", candidate / name)  # other outputs
    (candidate / "SHA256SUMS").write_text(f"{'0' * 64}  {name}\n")
    (result,) = compare_models.compare_dirs(reference, candidate)
    assert result.verdict == "different" and "does not match" in result.detail
    _sums(candidate, name)
    (result,) = compare_models.compare_dirs(reference, candidate)
    assert result.verdict == "different" and "tensors" in result.detail
    shutil.copy(MODELS / name, candidate / name)
    _sums(candidate, name)
    assert [r.verdict for r in compare_models.compare_dirs(reference, candidate)] == ["identical"]
