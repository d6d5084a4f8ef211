"""Evaluation as Darknet does it: ``map`` (AlexeyAB's validate_detector_map), COCO's
numbers over the same detections (``coco``), ``valid`` results files, anchors (k-means)."""
