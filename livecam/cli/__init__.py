"""The command line (click): the only place that prints or exits.

``livecam`` is a group of commands, ``run`` the default one (``livecam --source 0``). The shell
they share (one-line errors, exit codes, Ctrl-C, progress, logging) is :mod:`livecam.cli.shell`;
the options several of them take are declared once in :mod:`livecam.cli.options`; each command
is a module of its own (:mod:`~livecam.cli.run`, :mod:`~livecam.cli.annotate`,
:mod:`~livecam.cli.bench`, :mod:`~livecam.cli.evaluate`, :mod:`~livecam.cli.export`,
:mod:`~livecam.cli.layers`).
"""

from __future__ import annotations

import click

from livecam import __version__, choices
from livecam.cli.annotate import annotate_command
from livecam.cli.bench import bench_command
from livecam.cli.evaluate import evaluate_command
from livecam.cli.export import EXPORT_METHODS, export_command
from livecam.cli.layers import layers_command
from livecam.cli.options import InputPath, OutputPath
from livecam.cli.run import run_command
from livecam.cli.shell import CONTEXT_SETTINGS, LivecamCommand, LivecamGroup, flag

__all__ = ["COLORMAP_NAMES", "EXPORT_METHODS", "METHOD_NAMES", "InputPath", "LivecamCommand", "OutputPath", "flag",
           "main"]

# From the torch-free livecam.choices, so that --help is quick; tests check that they match
# livecam.cams.METHODS and livecam.render.COLORMAPS.
METHOD_NAMES = choices.METHODS
COLORMAP_NAMES = choices.COLORMAPS

MAIN_EPILOG = """\b
Examples:
  livecam --source 0                                  explain the webcam live, in a window
  livecam --source video.mp4 --output out.mp4         annotate a recorded video
  livecam --source demo --method cam --topk 3 --panels
  livecam annotate dashcam/ --out-dir annotated/      a whole archive, with a manifest
  livecam export --output lite0.onnx                  the model and its explanation in one ONNX file
  livecam bench --json this-box.json                  latency percentiles, FPS and start-up
  livecam layers --model resnet50 --weights random    the layers to explain, and the default

\b
'livecam run --help' lists every option of a run; each command has its own --help.
"""


@click.group(cls=LivecamGroup, context_settings=CONTEXT_SETTINGS, epilog=MAIN_EPILOG)
@click.version_option(__version__, prog_name="livecam")
def main() -> None:
    """livecam: see what an image classifier looks at, live.

    It reads a webcam, a video, a stream or a folder of images, explains every
    frame with one of twelve methods (Grad-CAM, CAM, Grad-CAM++, XGrad-CAM,
    LayerCAM, HiResCAM, counterfactual Grad-CAM, Finer-CAM, Eigen-CAM,
    Score-CAM, guided backpropagation, Guided Grad-CAM), blends the map over
    the frame with the most probable classes, and shows, records or serves
    the result. 'run' is the default command: 'livecam --source 0' is
    'livecam run --source 0'.
    """


# In this order: the message for an unknown command lists them so.
for _command in (run_command, annotate_command, bench_command, evaluate_command, export_command, layers_command):
    main.add_command(_command)
