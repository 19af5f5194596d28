"""The detector on the shipped test images: which labels each shipped model finds in OpenCV's samples.

One implementation of the check, run in two places: test_detect.py on the build machine (amd64) and the
arm64 Molecule scenario (roles/motion_recorder/molecule/arm64) inside the emulated Raspberry Pi, with the
installed appliance's Python:

    python3 detect_samples.py MODELS_DIR SAMPLES_DIR   # prints what was found as JSON; exit 1 on a mismatch

Only the installed package (cllmh.detect, OpenCV, numpy) is imported: no pytest on the appliance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from cllmh.detect import Detector

# (model, anchors or "", threshold): the shipped models, as the recorder and test_detect.py load them.
MODELS = (
    ("ssdlite_mnv2_person_int8.tflite", "ssdlite_anchors.npy", 0.5),
    ("ssdlite_mnv2_person_postprocess_int8.tflite", "", 0.5),
    ("centernet_mnv3_coco_fp32.tflite", "", 0.4),
)
SAMPLES = ("messi5.jpg", "fruits.jpg", "vtest.avi")  # from Debian's opencv-doc
VTEST_FRAME = 200  # pedestrians walking
# Scores this close to a model's threshold may fall on either side on another CPU (float rounding in
# the runtime's kernels): such a detection neither proves nor breaks a label.
MARGIN = 0.05
# What each model finds on amd64 at its threshold: every label, with its number of detections.
EXPECTED: dict[str, dict[str, dict[str, int]]] = {
    "ssdlite_mnv2_person_int8.tflite": {
        "messi5.jpg": {"person": 1},
        "fruits.jpg": {},
        "vtest.avi": {"person": 4},
    },
    "ssdlite_mnv2_person_postprocess_int8.tflite": {
        "messi5.jpg": {"person": 1},
        "fruits.jpg": {},
        "vtest.avi": {"person": 4},
    },
    "centernet_mnv3_coco_fp32.tflite": {
        "messi5.jpg": {"person": 2, "sports_ball": 1},
        "fruits.jpg": {},
        "vtest.avi": {"car": 1, "person": 7, "truck": 1},
    },
}
Found = dict[str, dict[str, dict[str, list[float]]]]  # model -> sample -> label -> scores


def sample_frame(samples: Path, name: str) -> np.ndarray:
    """A photo, or vtest's frame VTEST_FRAME (read frame by frame: seeking is inexact in some codecs)."""
    if not (samples / name).is_file():
        raise FileNotFoundError(f"{samples / name} is missing (Debian's opencv-doc ships it)")
    if not name.endswith(".avi"):
        return cv2.imread(str(samples / name))
    cap = cv2.VideoCapture(str(samples / name))
    for _ in range(VTEST_FRAME + 1):
        ok, frame = cap.read()
        if not ok:
            raise ValueError(f"{samples / name} has fewer than {VTEST_FRAME + 1} frames")
    cap.release()
    return frame


def found(models: Path, samples: Path) -> Found:
    """Per model and sample: the scores of each label detected (at the model's threshold - MARGIN)."""
    frames = {name: sample_frame(samples, name) for name in SAMPLES}
    result: Found = {}
    for model, anchors, threshold in MODELS:
        detector = Detector(
            models / model, anchors_path=models / anchors if anchors else None, threshold=threshold - MARGIN
        )
        result[model] = {}
        for name, frame in frames.items():
            scores: dict[str, list[float]] = {}
            for detection in detector.detect(frame):
                scores.setdefault(detection.label, []).append(round(detection.score, 3))
            result[model][name] = dict(sorted(scores.items()))
    return result


def mismatches(result: Found) -> list[str]:
    """What differs from EXPECTED: each expected label found at least as often (within MARGIN of the
    threshold), and no other label found clearly (MARGIN above the threshold)."""
    problems = []
    for model, _anchors, threshold in MODELS:
        for name, want in EXPECTED[model].items():
            got = result.get(model, {}).get(name, {})
            missing = {label: n for label, n in want.items() if len(got.get(label, [])) < n}
            extra = {
                label: scores
                for label, scores in got.items()
                if label not in want and max(scores) >= threshold + MARGIN
            }
            if missing or extra:
                problems.append(f"{model} on {name}: found {got}; missing {missing}, unexpected {extra}")
    return problems


def main(argv: list[str]) -> int:
    result = found(Path(argv[1]), Path(argv[2]))
    print(json.dumps(result, sort_keys=True))
    problems = mismatches(result)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
