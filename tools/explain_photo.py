"""Asks a running `cairn serve` to explain a real photo and renders the occlusion heatmap
over it as a PNG (the README's picture). Photos are scikit-image's (as in
tools/make_image_inputs.py): center-cropped, resized to the model's input size and
normalized with the manifest's mean/std, sent as a binary f32 tensor.

    python3 tools/explain_photo.py http://127.0.0.1:8080 efficientnet_lite0 coffee.png docs/img/explain-coffee.png \
        [--patch 32 --stride 16] [--box x0,y0,x1,y1]

With --box (the object's bounding box in the 224x224 crop, drawn by hand), it also reports
how much of the heatmap's positive mass lies inside the box against the box's share of the
image, and fails if the heat is not concentrated on the object.
"""
import argparse, json, sys, urllib.request
import numpy as np
from PIL import Image, ImageDraw
import skimage


def center_crop(im):
    w, h = im.size
    s = min(w, h)
    return im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))


def colormap(v):
    """0..1 -> RGB, dark blue to red to yellow (a perceptual 'hot'-like ramp)."""
    stops = np.array([[0, 0, 64], [40, 0, 160], [220, 30, 60], [255, 160, 0], [255, 255, 160]], np.float32)
    x = np.clip(v, 0, 1) * (len(stops) - 1)
    i = np.minimum(x.astype(int), len(stops) - 2)
    f = (x - i)[..., None]
    return (stops[i] * (1 - f) + stops[i + 1] * f).astype(np.uint8)


def pixel_map(heat, size):
    """Each pixel gets the mean drop of the patches covering it (as the occlusion paper)."""
    acc = np.zeros((size, size), np.float32)
    cnt = np.zeros((size, size), np.float32)
    patch = heat['patch']
    for r, y in enumerate(heat['y']):
        for c, x in enumerate(heat['x']):
            acc[y:y + patch, x:x + patch] += heat['drop'][r][c]
            cnt[y:y + patch, x:x + patch] += 1
    return acc / np.maximum(cnt, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('server')
    ap.add_argument('model')
    ap.add_argument('photo', help="a file name in scikit-image's data folder, e.g. coffee.png")
    ap.add_argument('out')
    ap.add_argument('--patch', type=int, default=32)
    ap.add_argument('--stride', type=int, default=16)
    ap.add_argument('--box', help='x0,y0,x1,y1 of the object in the model-size crop')
    args = ap.parse_args()

    models = json.load(urllib.request.urlopen(f'{args.server}/v1/models'))['models']
    model = next((m for m in models if m['name'] == args.model), None)
    if model is None:
        sys.exit(f"error: the server has no model '{args.model}' (it has: {', '.join(m['name'] for m in models)})")
    pre = model['preprocess']
    h, w = pre['size']
    im = center_crop(Image.open(f'{skimage.data_dir}/{args.photo}').convert('RGB')).resize((w, h), Image.BILINEAR)
    x = (np.asarray(im, np.float32) / 255 - np.array(pre['mean'], np.float32)) / np.array(pre['std'], np.float32)
    x = x.transpose(2, 0, 1)[None] if pre['layout'] == 'nchw' else x[None]
    req = urllib.request.Request(f'{args.server}/v1/models/{args.model}/explain?patch={args.patch}&stride={args.stride}',
                                 data=np.ascontiguousarray(x, np.float32).tobytes(), headers={'content-type': 'application/octet-stream'})
    doc = json.load(urllib.request.urlopen(req))
    t = doc['target']
    print(f"{args.photo}: top-1 '{t['label']}' p={t['probability']:.3f}; {doc['forward_passes']} forward passes in {doc['compute_ms']:.0f} ms")
    for c in doc['top']:
        print(f"  {c['probability']:.3f}  {c['label']}")

    heat = pixel_map(doc['heatmap'], h)
    pos = np.maximum(heat, 0)
    norm = pos / pos.max() if pos.max() > 0 else pos
    overlay = (np.asarray(im, np.float32) * 0.45 + colormap(norm).astype(np.float32) * 0.55).astype(np.uint8)
    canvas = Image.new('RGB', (w * 2 + 8, h + 24), 'white')
    canvas.paste(im, (0, 24))
    canvas.paste(Image.fromarray(overlay), (w + 8, 24))
    d = ImageDraw.Draw(canvas)
    d.text((4, 6), f"{args.photo}: {t['label']} ({t['probability']:.2f})", fill='black')
    d.text((w + 12, 6), f"occlusion drop, patch {args.patch} stride {args.stride}", fill='black')
    ok = True
    if args.box:
        x0, y0, x1, y1 = (int(v) for v in args.box.split(','))
        inside = pos[y0:y1, x0:x1].sum() / max(pos.sum(), 1e-12)
        area = (x1 - x0) * (y1 - y0) / (h * w)
        peak = np.unravel_index(np.argmax(heat), heat.shape)
        in_box = y0 <= peak[0] < y1 and x0 <= peak[1] < x1
        print(f"  heat inside the object's box: {inside:.0%} (the box is {area:.0%} of the image); peak at (y={peak[0]}, x={peak[1]}) {'inside' if in_box else 'OUTSIDE'} the box")
        d.rectangle((w + 8 + x0, 24 + y0, w + 8 + x1, 24 + y1), outline='white')
        ok = in_box and inside > area + 0.15
    canvas.save(args.out)
    print(f'wrote {args.out}')
    if not ok:
        sys.exit('error: the heatmap is not concentrated on the object')


if __name__ == '__main__':
    main()
