"""Face detectors for Face-S: one face box (x0, y0, x1, y1) per frame, or None.

The reference uses a YOLOv9 face model. Here: OpenCV's YuNet (`cv2.FaceDetectorYN`, ONNX weights from a
folder or S3) when given, else the Haar cascade that ships inside opencv (`cv2.data`), which needs no
download. Both are labelled in the report (`evaluator.face_detector`), since neither is YOLOv9.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class FaceDetector(Protocol):
    name: str

    def __call__(self, frame: np.ndarray) -> tuple[int, int, int, int] | None: ...


class HaarFaceDetector:
    """Frontal-face Haar cascade; the detection with the highest level weight wins."""

    name = "haar"

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml") -> None:
        import cv2

        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
        if self.cascade.empty():
            raise RuntimeError(f"OpenCV could not load the Haar cascade {cascade!r}")

    def __call__(self, frame: np.ndarray) -> tuple[int, int, int, int] | None:
        import cv2

        grey = cv2.cvtColor(np.ascontiguousarray(frame[:, :, :3]), cv2.COLOR_RGB2GRAY)
        boxes, _, weights = self.cascade.detectMultiScale3(grey, 1.1, 5, outputRejectLevels=True)
        if len(boxes) == 0:
            return None
        x, y, w, h = (int(v) for v in boxes[int(np.argmax(np.ravel(weights)))])
        return x, y, x + w, y + h


class YuNetFaceDetector:
    """OpenCV YuNet (face_detection_yunet_*.onnx) with the reference's confidence 0.2 and NMS IoU 0.4."""

    name = "yunet"

    def __init__(self, onnx_path: str, score_threshold: float = 0.2, nms_threshold: float = 0.4) -> None:
        import cv2

        from components.storage import materialize

        path = materialize(onnx_path, what="evaluator weights path")
        if path.is_dir():
            found = sorted(path.glob("*.onnx"))
            if not found:
                raise FileNotFoundError(f"no YuNet *.onnx under {str(path)!r}")
            path = found[0]
        self.detector = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold)

    def __call__(self, frame: np.ndarray) -> tuple[int, int, int, int] | None:
        import cv2

        bgr = cv2.cvtColor(np.ascontiguousarray(frame[:, :, :3]), cv2.COLOR_RGB2BGR)
        self.detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self.detector.detect(bgr)
        if faces is None or len(faces) == 0:
            return None
        x, y, w, h = faces[int(np.argmax(faces[:, -1])), :4]
        return int(max(x, 0)), int(max(y, 0)), int(x + w), int(y + h)


def extend_face_box(box: tuple[int, int, int, int], height: int) -> tuple[int, int, int, int]:
    """The reference's box extension: 17% of the height above, then 3% of the new height below, clipped."""
    x0, y0, x1, y1 = box
    y0 = max(int(y0 - 0.17 * (y1 - y0)), 0)
    y1 = min(int(y1 + 0.03 * (y1 - y0)), height - 1)  # uses the already raised top, as the reference does
    return x0, y0, x1, y1


def make_face_detector(spec: str) -> FaceDetector:
    """`haar` or `yunet:<onnx path or s3 URI>`."""
    if spec == "haar":
        return HaarFaceDetector()
    if spec.startswith("yunet:"):
        return YuNetFaceDetector(spec[len("yunet:") :])
    raise ValueError(f"face_detector={spec!r} unknown; expected 'haar' or 'yunet:<onnx>'")
