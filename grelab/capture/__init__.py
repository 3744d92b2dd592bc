"""Capture on a lab's link ends: armed before sending, BPF-filtered, whole frames, drops reported."""
from grelab.capture.capture import Capture, CaptureResult, Frame, compile_filter

__all__ = ["Capture", "CaptureResult", "Frame", "compile_filter"]
