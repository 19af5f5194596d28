"""Compare two model directories (e.g. files/models and a fresh `make models` build): byte-identical,
or equivalent when run through cllmh.detect on real images.

Runs in the appliance environment (ai-edge-litert, OpenCV, cllmh), not in the TensorFlow one.
Exit status 0 when every model in CANDIDATE/SHA256SUMS is identical or equivalent to REFERENCE's.

Equivalent means: the same input and output tensors (shapes, types); for float models, outputs
within 1e-3 on the sample images; for quantised models, every confident detection (score >= 0.6)
of either model matched by one of the other (same label, IoU >= 0.6, score within 0.15); for
anchor files, equal within 1e-6.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cllmh.detect import Detection, Detector, iou, load_interpreter

SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
CONFIDENT, LOOSE, MIN_IOU, MAX_SCORE_GAP = 0.6, 0.3, 0.6, 0.15


@dataclass(frozen=True)
class Result:
    name: str
    verdict: str  # "identical", "equivalent", "new" (allowed) or "different"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict != "different"


def unmatched(confident: list[Detection], others: list[Detection]) -> list[Detection]:
    """Confident detections with no counterpart among `others` (pure)."""
    return [
        d
        for d in confident
        if not any(
            o.label == d.label and iou(d.box, o.box) >= MIN_IOU and abs(o.score - d.score) <= MAX_SCORE_GAP
            for o in others
        )
    ]


def sample_images() -> dict[str, np.ndarray]:
    images = {
        name: cv2.imread(str(SAMPLES / name)) for name in ("messi5.jpg", "fruits.jpg", "basketball1.png")
    }
    capture = cv2.VideoCapture(str(SAMPLES / "vtest.avi"))
    for index in (0, 100, 200, 300, 500, 700):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        if ok:
            images[f"vtest#{index}"] = frame
    capture.release()
    missing = [name for name, img in images.items() if img is None]
    if missing or len(images) < 9:
        raise SystemExit(f"sample images missing under {SAMPLES} (Debian opencv-doc): {missing}")
    return images


def tensors(path: Path) -> list[tuple[tuple[int, ...], str]]:
    interpreter = load_interpreter(path)
    details = interpreter.get_input_details() + interpreter.get_output_details()
    return [(tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]).name) for d in details]


def raw_outputs(path: Path, images: dict[str, np.ndarray]) -> list[np.ndarray]:
    interpreter = load_interpreter(path)
    (spec,) = interpreter.get_input_details()
    _, height, width, _ = spec["shape"]
    out = []
    for img in images.values():
        rgb = cv2.cvtColor(cv2.resize(img, (int(width), int(height))), cv2.COLOR_BGR2RGB)
        interpreter.set_tensor(spec["index"], rgb[None].astype(spec["dtype"]))
        interpreter.invoke()
        out += [interpreter.get_tensor(o["index"]).copy() for o in interpreter.get_output_details()]
    return out


def compare_model(name: str, reference: Path, candidate: Path, images: dict[str, np.ndarray]) -> Result:
    a, b = reference / name, candidate / name
    if a.read_bytes() == b.read_bytes():
        return Result(name, "identical")
    if name.endswith(".npy"):
        x, y = np.load(a), np.load(b)
        ok = x.shape == y.shape and np.allclose(x, y, atol=1e-6)
        return Result(name, "equivalent" if ok else "different", f"max diff {np.abs(x - y).max():.2e}")
    if tensors(a) != tensors(b):
        return Result(name, "different", f"tensors {tensors(a)} vs {tensors(b)}")
    if tensors(a)[0][1] == "float32":
        diff = max(
            float(np.abs(x - y).max())
            for x, y in zip(raw_outputs(a, images), raw_outputs(b, images), strict=True)
        )
        return Result(name, "equivalent" if diff <= 1e-3 else "different", f"max output diff {diff:.2e}")
    anchors = {p: p.parent / "ssdlite_anchors.npy" for p in (a, b)}

    def detector(path: Path) -> Detector:
        try:
            return Detector(path, threshold=LOOSE)
        except ValueError:  # a raw SSD: it needs its anchors
            return Detector(path, threshold=LOOSE, anchors_path=anchors[path])

    da, db = detector(a), detector(b)
    problems, confident = [], 0
    for label, img in images.items():
        fa, fb = da.detect(img), db.detect(img)
        for found, others, side in ((fa, fb, "reference"), (fb, fa, "candidate")):
            sure = [d for d in found if d.score >= CONFIDENT]
            confident += len(sure)
            problems += [
                f"{label}: {side} {d.label} {d.score:.2f} at {d.box}" for d in unmatched(sure, others)
            ]
    if problems:
        return Result(name, "different", "; ".join(problems[:5]))
    return Result(name, "equivalent", f"{confident} confident detections matched on {len(images)} images")


def compare_dirs(reference: Path, candidate: Path, *, allow_new: bool = False) -> list[Result]:
    sums = candidate / "SHA256SUMS"
    names = [line.split()[1] for line in sums.read_text().splitlines() if line.strip()]
    images = sample_images()
    results = []
    for name in names:
        if hashlib.sha256((candidate / name).read_bytes()).hexdigest() not in sums.read_text():
            results.append(Result(name, "different", f"{candidate / name} does not match {sums}"))
        elif not (reference / name).is_file():
            results.append(Result(name, "new" if allow_new else "different", f"not in {reference}"))
        else:
            results.append(compare_model(name, reference, candidate, images))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("candidate", type=Path, help="a directory with SHA256SUMS")
    parser.add_argument("--allow-new", action="store_true", help="models missing from REFERENCE are fine")
    args = parser.parse_args(argv)
    results = compare_dirs(args.reference, args.candidate, allow_new=args.allow_new)
    for r in results:
        print(f"{r.verdict:>10}  {r.name}" + (f"  ({r.detail})" if r.detail else ""))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
