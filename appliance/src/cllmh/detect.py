"""Object detection with a MobileNet-family TFLite model, only on regions around motion.

Three output layouts are understood, chosen from the model's output tensors:

- ``postprocess``: TFLite_Detection_PostProcess (boxes, classes, scores, count), as in the
  COCO SSD MobileNet models of the TF / Coral zoos (class ids into the 90-id COCO label map);
- ``ssd_raw``: raw SSD outputs (box encodings [1,N,4], class logits [1,N,C]) decoded with the
  model's anchors (ymin, xmin, ymax, xmax) and box scales 10,10,5,5, then NMS;
- ``centernet``: [1,K,6] rows of x1, y1, x2, y2 (input pixels), score, class (COCO-80 order).

The interpreter comes from ``ai_edge_litert`` (the successor of tflite-runtime), falling back to
``tflite_runtime``. Decoding is pure numpy, testable without a model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cllmh.motion import Box

COCO80 = (  # noqa: SIM905 - one readable line per row
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "
    "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella "
    "handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard "
    "surfboard tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange "
    "broccoli carrot hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop "
    "mouse remote keyboard cell_phone microwave oven toaster sink refrigerator book clock vase scissors "
    "teddy_bear hair_drier toothbrush"
).split()
# The TF Object Detection API's 90-id COCO map: ids without a class are None.
_COCO90_MISSING = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def _coco90() -> tuple[str | None, ...]:
    names = iter(COCO80)
    return tuple(None if i in _COCO90_MISSING else next(names) for i in range(1, 91))


COCO90 = _coco90()


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: Box  # full-frame pixels


# CLLMH_TFLITE_XNNPACK=0 runs the runtime's built-in kernels instead of its default XNNPACK delegate:
# for emulated arm64 (qemu-user), where XNNPACK's CPU detection reads the host's /proc/cpuinfo and the
# interpreter crashes in allocate_tensors. A real Raspberry Pi keeps XNNPACK (several times faster).
XNNPACK_ENV = "CLLMH_TFLITE_XNNPACK"


def load_interpreter(model_path: Path, threads: int = 1):  # the runtime's own Interpreter type
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: PLC0415
    except ImportError:  # pragma: no cover - older appliances
        from tflite_runtime.interpreter import Interpreter, OpResolverType  # noqa: PLC0415
    options = {}
    if os.environ.get(XNNPACK_ENV, "1") == "0":
        options["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_path=str(model_path), num_threads=threads, **options)
    interpreter.allocate_tensors()
    return interpreter


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_ssd_raw(
    encodings: np.ndarray, logits: np.ndarray, anchors: np.ndarray, *, threshold: float, nms_iou: float = 0.5
) -> list[tuple[int, float, tuple[float, float, float, float]]]:
    """Raw SSD outputs -> (class index, score, (ymin, xmin, ymax, xmax) normalised) after NMS (pure)."""
    ay = (anchors[:, 0] + anchors[:, 2]) / 2
    ax = (anchors[:, 1] + anchors[:, 3]) / 2
    ah = anchors[:, 2] - anchors[:, 0]
    aw = anchors[:, 3] - anchors[:, 1]
    ty, tx, th, tw = (encodings[:, i] for i in range(4))
    yc = ty / 10.0 * ah + ay
    xc = tx / 10.0 * aw + ax
    h = np.exp(th / 5.0) * ah
    w = np.exp(tw / 5.0) * aw
    boxes = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)
    scores = sigmoid(logits[:, 1:])  # column 0 is the background
    out: list[tuple[int, float, tuple[float, float, float, float]]] = []
    for cls in range(scores.shape[1]):
        keep = np.flatnonzero(scores[:, cls] >= threshold)
        if keep.size == 0:
            continue
        rects = [
            [
                float(boxes[i, 1]),
                float(boxes[i, 0]),
                float(boxes[i, 3] - boxes[i, 1]),
                float(boxes[i, 2] - boxes[i, 0]),
            ]
            for i in keep
        ]
        chosen = cv2.dnn.NMSBoxes(rects, [float(scores[i, cls]) for i in keep], threshold, nms_iou)
        for j in np.array(chosen).reshape(-1):
            i = keep[int(j)]
            out.append((cls + 1, float(scores[i, cls]), tuple(float(v) for v in boxes[i])))
    return out


def postprocess_order(outputs: list[dict]) -> tuple[int, int, int, int]:
    """Indices of (boxes, classes, scores, count) among TFLite_Detection_PostProcess outputs (pure).

    The op's outputs are always boxes [1,N,4], classes [1,N], scores [1,N] and count [1], in that
    order. Boxes and count are told apart by shape. Classes and scores share a shape, so their
    names decide: the TF1 converter names them OP, OP:1, OP:2, OP:3 (boxes first), while models
    exported through a TF2 SavedModel name the same outputs StatefulPartitionedCall:3, :2, :1, :0
    (reversed, boxes last). Whichever suffix the boxes carry gives the direction.
    """
    shapes = [tuple(int(v) for v in detail.get("shape", ())) for detail in outputs]
    suffixes = []
    for detail in outputs:
        name = str(detail.get("name", ""))
        part = name.rsplit(":", 1)[1] if ":" in name else "0"
        suffixes.append(int(part) if part.isdigit() else -1)
    boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[-1] == 4]
    counts = [i for i, s in enumerate(shapes) if int(np.prod(s)) == 1]
    if len(boxes) != 1 or len(counts) != 1:
        return 0, 1, 2, 3  # not recognisable by shape: the op's own order
    pair = [i for i in range(len(outputs)) if i not in (boxes[0], counts[0])]
    if sorted(suffixes) == [0, 1, 2, 3]:
        ascending = suffixes[boxes[0]] < suffixes[counts[0]]
        classes, scores = sorted(pair, key=lambda i: suffixes[i], reverse=not ascending)
    else:
        classes, scores = pair  # listed order, the op's own
    return boxes[0], classes, scores, counts[0]


class Detector:
    """A TFLite detector; `detect(frame, regions)` returns detections in full-frame pixels."""

    def __init__(
        self,
        model_path: Path,
        *,
        labels: list[str | None] | None = None,
        anchors_path: Path | None = None,
        threshold: float = 0.4,
        threads: int = 1,
    ) -> None:
        if not model_path.is_file():
            raise FileNotFoundError(f"detector model not found: {model_path}")
        self.interpreter = load_interpreter(model_path, threads)
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()
        _, self.height, self.width, _ = (int(v) for v in self.input["shape"])
        self.threshold = threshold
        shapes = [tuple(int(v) for v in o["shape"]) for o in self.outputs]
        if len(self.outputs) == 4:
            self.layout = "postprocess"
            self.labels = labels or list(COCO90)
            self.postprocess = postprocess_order(self.outputs)
        elif len(self.outputs) == 2 and all(len(s) == 3 for s in shapes):
            self.layout = "ssd_raw"
            if anchors_path is None:
                raise ValueError(f"{model_path.name} has raw SSD outputs: it needs its anchors file")
            self.anchors = np.load(anchors_path).astype(np.float32)
            self.box_index = next(i for i, s in enumerate(shapes) if s[-1] == 4)
            classes = shapes[1 - self.box_index][-1]
            self.labels = labels or (["background", "person"] if classes == 2 else ["background", *COCO80])
        elif len(self.outputs) == 1 and shapes[0][-1] == 6:
            self.layout = "centernet"
            self.labels = labels or list(COCO80)
        else:
            raise ValueError(f"{model_path.name}: unsupported output layout {shapes}")

    def _prepare(self, crop_bgr: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(
            cv2.resize(crop_bgr, (self.width, self.height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
        )
        if self.input["dtype"] == np.uint8:
            return rgb[None]
        data = rgb.astype(np.float32)
        if self.layout != "centernet":  # SSD float models expect [-1, 1]
            data = (data - 127.5) / 127.5
        return data[None]

    def _run(self, crop_bgr: np.ndarray) -> list[tuple[str, float, tuple[float, float, float, float]]]:
        """Detections in the crop as (label, score, (x1, y1, x2, y2) normalised to the crop)."""
        self.interpreter.set_tensor(self.input["index"], self._prepare(crop_bgr))
        self.interpreter.invoke()
        out = [self.interpreter.get_tensor(o["index"]) for o in self.outputs]
        found: list[tuple[str, float, tuple[float, float, float, float]]] = []
        if self.layout == "centernet":
            for x1, y1, x2, y2, score, cls in out[0][0]:
                if score >= self.threshold and 0 <= int(cls) < len(self.labels) and self.labels[int(cls)]:
                    found.append(
                        (
                            self.labels[int(cls)],
                            float(score),
                            (x1 / self.width, y1 / self.height, x2 / self.width, y2 / self.height),
                        )
                    )
        elif self.layout == "ssd_raw":
            enc, logits = out[self.box_index][0], out[1 - self.box_index][0]
            for cls, score, (ymin, xmin, ymax, xmax) in decode_ssd_raw(
                enc, logits, self.anchors, threshold=self.threshold
            ):
                if cls < len(self.labels) and self.labels[cls]:
                    found.append((self.labels[cls], score, (xmin, ymin, xmax, ymax)))
        else:
            b, c, sc, n = self.postprocess
            boxes, classes, scores = out[b][0], out[c][0], out[sc][0]
            count = int(out[n].reshape(-1)[0])
            for i in range(min(count, len(boxes))):
                cls = int(classes[i])
                if scores[i] >= self.threshold and cls < len(self.labels) and self.labels[cls]:
                    ymin, xmin, ymax, xmax = (float(v) for v in boxes[i])
                    found.append((self.labels[cls], float(scores[i]), (xmin, ymin, xmax, ymax)))
        return found

    def detect(self, frame_bgr: np.ndarray, regions: list[Box] | None = None) -> list[Detection]:
        height, width = frame_bgr.shape[:2]
        detections: list[Detection] = []
        for x1, y1, x2, y2 in regions or [(0, 0, width, height)]:
            crop = frame_bgr[y1:y2, x1:x2]
            if crop.size == 0:
                continue
            cw, ch = x2 - x1, y2 - y1
            for label, score, (bx1, by1, bx2, by2) in self._run(crop):
                box = (
                    int(np.clip(x1 + bx1 * cw, 0, width)),
                    int(np.clip(y1 + by1 * ch, 0, height)),
                    int(np.clip(x1 + bx2 * cw, 0, width)),
                    int(np.clip(y1 + by2 * ch, 0, height)),
                )
                detections.append(Detection(label, score, box))
        return detections


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes (pure)."""
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def regions_around(
    boxes: list[Box], frame_size: tuple[int, int], *, min_side: int, max_regions: int = 4
) -> list[Box]:
    """Square regions around motion boxes (at least `min_side`), merged when they overlap (pure)."""
    width, height = frame_size
    regions: list[list[int]] = []
    for x1, y1, x2, y2 in sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True):
        side = min(max(int(max(x2 - x1, y2 - y1) * 1.3), min_side), width, height)
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        rx1 = int(np.clip(cx - side // 2, 0, width - side))
        ry1 = int(np.clip(cy - side // 2, 0, height - side))
        region = [rx1, ry1, rx1 + side, ry1 + side]
        for other in regions:
            if (
                region[0] < other[2]
                and other[0] < region[2]
                and region[1] < other[3]
                and other[1] < region[3]
            ):
                other[:] = [
                    min(other[0], region[0]),
                    min(other[1], region[1]),
                    max(other[2], region[2]),
                    max(other[3], region[3]),
                ]
                break
        else:
            regions.append(region)
    return [tuple(r) for r in regions[:max_regions]]  # type: ignore[misc]
