from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cllmh.detect import COCO80, COCO90, Detector, decode_ssd_raw, iou, postprocess_order, regions_around
from cllmh.motion import MotionConfig, MotionDetector
from detect_samples import found, mismatches
from footage import DATA, MODELS, image, need, vtest_frames

SSD = MODELS / "ssdlite_mnv2_person_int8.tflite"
ANCHORS = MODELS / "ssdlite_anchors.npy"
CENTERNET = MODELS / "centernet_mnv3_coco_fp32.tflite"
SSD_POSTPROCESS = MODELS / "ssdlite_mnv2_person_postprocess_int8.tflite"


@pytest.fixture(scope="module")
def ssd() -> Detector:
    return Detector(need(SSD), anchors_path=need(ANCHORS), threshold=0.5)


def persons(detections) -> list:
    return [d for d in detections if d.label == "person"]


def test_label_maps() -> None:
    assert COCO80[0] == "person" and COCO80[7] == "truck" and len(COCO80) == 80
    assert COCO90[0] == "person" and COCO90[11] is None and COCO90[12] == "stop_sign" and len(COCO90) == 90


def test_a_zero_encoding_decodes_to_its_anchor() -> None:
    anchors = np.array([[0.1, 0.2, 0.5, 0.6]], np.float32)
    out = decode_ssd_raw(
        np.zeros((1, 4), np.float32), np.array([[0.0, 5.0]], np.float32), anchors, threshold=0.5
    )
    cls, score, box = out[0]
    assert cls == 1 and score == pytest.approx(0.9933, abs=1e-3)
    assert box == pytest.approx((0.1, 0.2, 0.5, 0.6))


def _outputs(*named: tuple[str, tuple[int, ...]]) -> list[dict]:
    return [{"name": name, "shape": np.array(shape)} for name, shape in named]


def test_postprocess_outputs_of_a_tf1_conversion_are_matched_by_shape_and_name() -> None:
    op = "TFLite_Detection_PostProcess"
    listed = _outputs((f"{op}:2", (1, 10)), (op, (1, 10, 4)), (f"{op}:3", (1,)), (f"{op}:1", (1, 10)))
    assert postprocess_order(listed) == (1, 3, 0, 2)  # boxes, classes, scores, count


def test_postprocess_outputs_of_a_tf2_savedmodel_conversion_are_reversed() -> None:
    # As TF2 exports (and files/models/ssdlite_mnv2_person_postprocess_int8.tflite) list them.
    call = "StatefulPartitionedCall"
    listed = _outputs(
        (f"{call}:1", (1, 20)), (f"{call}:3", (1, 20, 4)), (f"{call}:0", (1,)), (f"{call}:2", (1, 20))
    )
    assert postprocess_order(listed) == (1, 3, 0, 2)


def test_postprocess_outputs_without_usable_names_fall_back_to_the_op_order() -> None:
    listed = _outputs(("a", (1, 10, 4)), ("b", (1, 10)), ("c", (1, 10)), ("d", (1,)))
    assert postprocess_order(listed) == (0, 1, 2, 3)
    shuffled = _outputs(("d", (1,)), ("a", (1, 10, 4)), ("b", (1, 10)), ("c", (1, 10)))
    assert postprocess_order(shuffled) == (1, 2, 3, 0)  # boxes and count by shape, the rest as listed


def test_the_postprocess_layout_on_a_real_model_agrees_with_the_raw_ssd(ssd: Detector) -> None:
    detector = Detector(need(SSD_POSTPROCESS), threshold=0.5)
    assert detector.layout == "postprocess"
    assert persons(detector.detect(image("messi5.jpg")))
    assert not persons(detector.detect(image("fruits.jpg")))
    frame = vtest_frames(every=1)[200]
    fused, raw = persons(detector.detect(frame)), persons(ssd.detect(frame))
    assert len(fused) >= 3
    # Same network, same anchors: every person the raw decoder finds is found by the fused op.
    for person in raw:
        best = max(iou(person.box, other.box) for other in fused)
        assert best > 0.7, (person, fused)


def test_the_person_ssd_finds_people_and_not_fruit(ssd: Detector) -> None:
    assert ssd.layout == "ssd_raw"
    assert persons(ssd.detect(image("messi5.jpg")))
    assert not persons(ssd.detect(image("fruits.jpg")))
    assert len(persons(ssd.detect(vtest_frames(every=1)[200]))) >= 3


def test_every_shipped_model_finds_the_expected_labels_in_the_sample_images() -> None:
    # The check the arm64 Molecule scenario runs on the emulated Raspberry Pi: the same labels there.
    assert mismatches(found(MODELS, DATA)) == []


def test_without_the_xnnpack_delegate_the_same_labels_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # How the emulated arm64 box runs the detector (qemu-user crashes XNNPACK); a real Pi keeps XNNPACK.
    monkeypatch.setenv("CLLMH_TFLITE_XNNPACK", "0")
    assert mismatches(found(MODELS, DATA)) == []


def test_centernet_finds_people_in_vtest() -> None:
    detector = Detector(need(CENTERNET), threshold=0.4, threads=2)
    assert detector.layout == "centernet"
    found = persons(detector.detect(vtest_frames(every=1)[200]))
    assert len(found) >= 3
    assert all(0 <= d.box[0] < d.box[2] <= 768 and 0 <= d.box[1] < d.box[3] <= 576 for d in found)


def test_a_raw_ssd_without_anchors_and_a_missing_model_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="anchors"):
        Detector(need(SSD))
    with pytest.raises(FileNotFoundError, match="not found"):
        Detector(tmp_path / "missing.tflite")


def test_iou_of_boxes() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_regions_are_squares_around_motion_merged_when_overlapping() -> None:
    regions = regions_around(
        [(100, 100, 140, 200), (120, 150, 160, 230), (600, 400, 620, 440)], (768, 576), min_side=150
    )
    assert len(regions) == 2
    for x1, y1, x2, y2 in regions:
        assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576


def test_detector_runs_only_on_motion_regions_and_finds_people(ssd: Detector) -> None:
    motion = MotionDetector(MotionConfig(), (768, 576))
    calls, found = 0, 0
    frames = vtest_frames(limit=80)
    for frame in frames:
        result = motion.process(frame)
        if not result.motion:
            continue
        regions = regions_around(result.boxes, (768, 576), min_side=ssd.width)
        calls += len(regions)
        found += len(persons(ssd.detect(frame, regions)))
    assert calls > 0 and found > 20
