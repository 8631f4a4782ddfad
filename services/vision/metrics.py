"""The vision service's metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from lanai.services.core.metrics import LATENCY_BUCKETS

IMAGES = Counter("lanai_vision_images", "Images processed, by task and model.", ["task", "model"])
SECONDS = Histogram("lanai_vision_duration_seconds", "Time to decode and process one image, by task.",
                    ["task"], buckets=LATENCY_BUCKETS)
# The video metrics' task label is the stream's analyses joined with "+" ("faces", "classify+faces"): one
# frame is analysed once for all of them, so it counts once, under the combination it was asked for.
VIDEO_FRAMES = Counter("lanai_vision_video_frames", "StreamAnalyze frames: received, analysed, and dropped "
                       "(latest wins: replaced by a newer frame, or waited longer than the stream allows).",
                       ["task", "outcome"])
VIDEO_SECONDS = Histogram("lanai_vision_video_latency_seconds", "StreamAnalyze: from a frame's arrival at the node "
                          "to its result (waiting for the analyser, plus the analyses), by task.", ["task"],
                          buckets=LATENCY_BUCKETS)
