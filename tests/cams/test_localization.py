"""Grad-CAM points at the object: the real model, a real photo pasted at known positions."""

from __future__ import annotations

import cv2
import numpy as np

import livecam
from tests.conftest import CAT_CLASSES, cat_on_background


def test_gradcam_maximum_lies_inside_the_pasted_cat(lite0, chelsea_bgr) -> None:
    height, width = 480, 640
    cw, ch = 240, 160
    cat = cv2.resize(chelsea_bgr, (cw, ch), interpolation=cv2.INTER_AREA)
    hits, total, cats = 0, 0, 0
    with livecam.Explainer(lite0, "gradcam") as explainer:
        for y in np.linspace(0, height - ch, 5).astype(int):
            for x in np.linspace(0, width - cw, 5).astype(int):
                frame = cat_on_background(cat, (height, width), (int(x), int(y)))
                result = livecam.explain_frame(frame, explainer)
                cam = result.cams[0].numpy()
                assert cam.shape == (height, width)
                py, px = np.unravel_index(int(cam.argmax()), cam.shape)
                hits += int(x <= px < x + cw and y <= py < y + ch)
                cats += lite0.class_names[int(result.classes[0])] in CAT_CLASSES
                total += 1
    assert cats == total, "the real model should see a cat at every position"
    assert hits >= 0.9 * total, f"the map's maximum was inside the cat at {hits} of {total} positions"
