"""What livecam assumes of a third-party graph's input and classes, and how the user's words become input ``x``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livecam.errors import LivecamError
from livecam.graphs.explain import InputConvention, map_layout
from livecam.graphs.third_party import imagenet_classes, read_labels
from livecam.preprocess import to_array
from livecam.types import Preprocess


def test_imagenet_names_ship_without_torchvision() -> None:
    from livecam.zoo.torchvision_models import imagenet_categories

    assert imagenet_classes() == imagenet_categories()


def test_a_bgr_0_255_convention_is_the_same_input_as_livecams_rgb_one(chelsea_bgr: np.ndarray) -> None:
    """Caffe-style BGR in [0, 255] minus a per-channel mean: x normalized with the converted RGB [0, 1] mean and std,
    then flipped to BGR (what the graph's adapter does), is exactly what the graph wanted."""
    caffe = InputConvention((224, 224), (103.94, 116.78, 123.68), (58.4, 57.1, 57.4), 255.0, rgb=False)
    x = to_array([chelsea_bgr], caffe.preprocess())[0]  # (H, W, 3) RGB, normalized with the converted values
    fed = x[..., ::-1]  # the adapter's channel flip
    resized = to_array([chelsea_bgr], Preprocess((224, 224), (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)))[0]
    wanted = (resized[..., ::-1] - np.array(caffe.mean)) / np.array(caffe.std)  # BGR [0, 255], the graph's own
    np.testing.assert_allclose(fed, wanted, atol=1e-3)


@pytest.mark.parametrize(("shape", "prefer", "layout"), [
    ((1, 512, 7, 7), "nchw", "nchw"), ((1, 7, 7, 512), "nchw", "nhwc"), ((1, 14, 14, 14), "nhwc", "nhwc"),
    ((1, 14, 14, 14), "nchw", "nchw"), ((1, 1000, 1, 1), "nchw", "nchw"), ((1, 3, 100, 7), "nchw", None),
])
def test_a_maps_layout_is_the_pair_of_axes_that_tiles_the_image(shape, prefer, layout) -> None:
    assert map_layout(shape, (224, 224), prefer) == layout


def test_labels_are_one_per_line_and_as_many_as_the_classes(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog\n fish \n")
    assert read_labels(path, 3) == ["cat", "dog", "fish"]
    with pytest.raises(LivecamError, match="names 3 classes, and the graph has 4; give one name per line"):
        read_labels(path, 4)
    with pytest.raises(LivecamError, match="cannot read the labels file"):
        read_labels(tmp_path / "none.txt", 3)
