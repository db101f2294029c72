"""Draws the demo app's icons (a cairn: three stacked stones) as PNGs, no downloads.

    python3 tools/make_app_icons.py web/app/icons

Writes icon-192.png, icon-512.png (purpose "any": the stones fill the square) and
icon-maskable-512.png (purpose "maskable": the stones stay inside the 80% safe zone).
"""
import os, sys
from PIL import Image, ImageDraw

BG = (22, 58, 74)         # deep teal; white on it has a contrast ratio above 10
STONES = [(232, 226, 210), (203, 192, 168), (170, 156, 128)]


def draw(size, safe):
    """Three stones centred in a box `safe` of the icon's side."""
    s = size * 4  # supersample, then downscale for smooth edges
    im = Image.new('RGB', (s, s), BG)
    d = ImageDraw.Draw(im)
    box = s * safe
    x0, y0 = (s - box) / 2, (s - box) / 2
    # (width, height) of each stone as a share of the box, bottom to top.
    shape = [(0.86, 0.30), (0.62, 0.25), (0.38, 0.21)]
    y = y0 + box * 0.93
    for (w, h), color in zip(shape, STONES[::-1]):
        cx = x0 + box / 2
        d.ellipse([cx - box * w / 2, y - box * h, cx + box * w / 2, y], fill=color)
        y -= box * h * 0.86
    return im.resize((size, size), Image.LANCZOS)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'web/app/icons'
    os.makedirs(out, exist_ok=True)
    for name, size, safe in [('icon-192.png', 192, 0.9), ('icon-512.png', 512, 0.9), ('icon-maskable-512.png', 512, 0.7)]:
        draw(size, safe).save(os.path.join(out, name), optimize=True)
        print(f'wrote {os.path.join(out, name)}')


if __name__ == '__main__':
    main()
