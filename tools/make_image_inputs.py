"""Writes real-photo model inputs as .npy files: the color photos shipped in scikit-image's
data folder, each as crops, flips and scales (deterministic), resized to SIZE and normalized
with MEAN/STD, NCHW float32 [1, 3, SIZE, SIZE].

    python3 tools/make_image_inputs.py OUT_DIR [--size 224] [--mean 0.5,0.5,0.5] [--std 0.5,0.5,0.5] [--per-photo 40]

Used to measure fidelity on real images (e.g. `cairn pack --fidelity-inputs OUT_DIR`).
"""
import argparse, os
import numpy as np
from PIL import Image, ImageOps
import skimage

PHOTOS = ['chelsea.png', 'coffee.png', 'astronaut.png', 'rocket.jpg', 'motorcycle_left.png', 'motorcycle_right.png', 'hubble_deep_field.jpg', 'retina.jpg']


def variants(im, count):
    """Crops (scale, position), each also mirrored, until `count`."""
    w, h = im.size
    side = min(w, h)
    out = []
    for scale in (1.0, 0.85, 0.7, 0.55, 0.4):
        s = int(side * scale)
        for fx, fy in ((0.5, 0.5), (0, 0), (1, 0), (0, 1), (1, 1)):
            x0, y0 = int((w - s) * fx), int((h - s) * fy)
            crop = im.crop((x0, y0, x0 + s, y0 + s))
            out += [crop, ImageOps.mirror(crop)]
    return out[:count]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out')
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--mean', default='0.5,0.5,0.5')
    ap.add_argument('--std', default='0.5,0.5,0.5')
    ap.add_argument('--per-photo', type=int, default=40)
    args = ap.parse_args()
    mean = np.array([float(v) for v in args.mean.split(',')], np.float32)
    std = np.array([float(v) for v in args.std.split(',')], np.float32)
    data = os.path.join(os.path.dirname(skimage.__file__), 'data')
    os.makedirs(args.out, exist_ok=True)
    n = 0
    for photo in PHOTOS:
        im = Image.open(os.path.join(data, photo)).convert('RGB')
        for k, v in enumerate(variants(im, args.per_photo)):
            x = np.asarray(v.resize((args.size, args.size), Image.BILINEAR), np.float32) / 255
            x = ((x - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
            np.save(os.path.join(args.out, f'{os.path.splitext(photo)[0]}_{k:02d}.npy'), x)
            n += 1
    print(f'wrote {n} inputs from {len(PHOTOS)} photos to {args.out}')


if __name__ == '__main__':
    main()
