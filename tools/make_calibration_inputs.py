"""Writes calibration inputs for int8 quantization as .npy files, from photos that the
evaluation set (tools/make_image_inputs.py: scikit-image's photos) never uses: scikit-learn's
sample images (china.jpg, flower.jpg) and scikit-image photos outside that list, as crops
and flips, resized to SIZE and normalized with MEAN/STD, NCHW float32 [1, 3, SIZE, SIZE].

    python3 tools/make_calibration_inputs.py OUT_DIR [--size 224] [--mean 0.5,0.5,0.5] [--std 0.5,0.5,0.5] [--per-photo 16]
"""
import argparse, os, sys
import numpy as np
from PIL import Image
import skimage
from sklearn.datasets import load_sample_images

sys.path.insert(0, os.path.dirname(__file__))
from make_image_inputs import PHOTOS, variants  # noqa: E402

# Color photos in scikit-image's data folder that the evaluation set does not use.
CANDIDATES = ['ihc.png', 'immunohistochemistry.png', 'chessboard_RGB.png', 'color.png', 'lily.png', 'skin.jpg', 'logo.png']


def photos():
    out = []
    for name, arr in zip(('china', 'flower'), load_sample_images().images):
        out.append((name, Image.fromarray(arr).convert('RGB')))
    data = os.path.join(os.path.dirname(skimage.__file__), 'data')
    for f in CANDIDATES:
        p = os.path.join(data, f)
        if f not in PHOTOS and os.path.exists(p):
            im = Image.open(p)
            if im.mode in ('RGB', 'RGBA', 'P') and min(im.size) >= 128:
                out.append((os.path.splitext(f)[0], im.convert('RGB')))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out')
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--mean', default='0.5,0.5,0.5')
    ap.add_argument('--std', default='0.5,0.5,0.5')
    ap.add_argument('--per-photo', type=int, default=16)
    args = ap.parse_args()
    mean = np.array([float(v) for v in args.mean.split(',')], np.float32)
    std = np.array([float(v) for v in args.std.split(',')], np.float32)
    os.makedirs(args.out, exist_ok=True)
    n = 0
    used = photos()
    for name, im in used:
        for k, v in enumerate(variants(im, args.per_photo)):
            x = np.asarray(v.resize((args.size, args.size), Image.BILINEAR), np.float32) / 255
            x = ((x - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
            np.save(os.path.join(args.out, f'calib_{name}_{k:02d}.npy'), x)
            n += 1
    print(f'wrote {n} calibration inputs from {len(used)} photos ({", ".join(n for n, _ in used)}) to {args.out}')


if __name__ == '__main__':
    main()
