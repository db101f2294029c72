"""The tutorial's images: real photos (scikit-image's), as MobileNetV2 takes them.

    python3 tools/tutorial/images.py OUT_DIR [--calibration 24] [--evaluation 8]

Writes OUT_DIR/calibration.npy ([N, 224, 224, 3] float32 in [-1, 1]: the representative
dataset of the int8 conversion, also the BatchNorm statistics) and OUT_DIR/evaluation.npy (the
inputs every runtime is compared on). Calibration takes the even crops of each photo, evaluation
the odd ones (tools/tflite/keras_mobilenetv2.py's photo_inputs): the two sets share no image.
Runs with the system python (PIL, scikit-image); the Keras side (export.py) runs in the
converters' venv, which has neither, and reads these files.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tflite'))
from keras_mobilenetv2 import photo_inputs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out')
    ap.add_argument('--calibration', type=int, default=24)
    ap.add_argument('--evaluation', type=int, default=8)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    calibration = np.concatenate(photo_inputs(args.calibration))
    evaluation = np.concatenate(photo_inputs(args.evaluation, evaluation=True))
    np.save(os.path.join(args.out, 'calibration.npy'), calibration)
    np.save(os.path.join(args.out, 'evaluation.npy'), evaluation)
    print(f'{len(calibration)} calibration and {len(evaluation)} evaluation images in {args.out}')


if __name__ == '__main__':
    main()
