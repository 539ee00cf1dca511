"""Drawing helpers for :mod:`deepfake_lightning.data.synthetic`: face rendering and fake traces.

Everything works on float32 HxWx3 arrays in [0, 255]. Randomness comes only from the
``numpy.random.Generator`` passed in, so an image is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

_HAIR = np.array([[20, 15, 12], [60, 38, 22], [110, 75, 40], [200, 165, 100], [150, 60, 25], [165, 160, 155]])
_IRIS = np.array([[70, 40, 20], [40, 90, 150], [60, 110, 60], [110, 80, 40]])


@dataclass
class FaceGeom:
    """Where the face is, so fake traces can target the face region like a face-swap would."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float


def _poly(cx: float, cy: float, rx: float, ry: float, ang: float, n: int = 40) -> list[tuple[float, float]]:
    """Rotated ellipse as a polygon (PIL ellipses cannot rotate)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = np.cos(ang), np.sin(ang)
    return list(zip((cx + c * x - s * y).tolist(), (cy + s * x + c * y).tolist(), strict=True))


def _col(c: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, amp: float, ch: int = 3) -> np.ndarray:
    """Low-frequency noise (bicubic-upsampled random grid): lighting blobs, skin mottling."""
    g = rng.uniform(-1, 1, (cells, cells, ch)).astype(np.float32)
    up = [np.asarray(Image.fromarray(g[..., i], "F").resize((size, size), Image.BICUBIC)) for i in range(ch)]
    return amp * np.stack(up, -1)


def render_face(rng: np.random.Generator, size: int) -> tuple[np.ndarray, FaceGeom]:
    """Render one face-like image (no fake traces). Shapes are drawn at 2x and box-reduced for anti-aliasing."""
    S = 2 * size  # supersampled canvas
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    # Background: two-colour linear gradient + low-frequency blobs.
    c1, c2 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    phi = rng.uniform(0, 2 * np.pi)
    t = np.clip((xx - 0.5) * np.cos(phi) + (yy - 0.5) * np.sin(phi) + 0.5, 0, 1)[..., None]
    bg = (1 - t) * c1 + t * c2 + _smooth_noise(rng, size, 5, rng.uniform(0, 35))
    canvas, mask = Image.new("RGB", (S, S)), Image.new("L", (S, S))
    dc, dm = ImageDraw.Draw(canvas), ImageDraw.Draw(mask)

    def shape(pts: list[tuple[float, float]], col: np.ndarray) -> None:
        dc.polygon(pts, fill=_col(col))
        dm.polygon(pts, fill=255)

    for _ in range(rng.integers(0, 4)):  # background clutter
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * S
        w, h = rng.uniform(0.1, 0.5, 2) * S
        pts = _poly(
            x0 + w / 2, y0 + h / 2, w / 2, h / 2, rng.uniform(0, np.pi), 4 if rng.random() < 0.5 else 24
        )
        shape(pts, rng.uniform(0, 255, 3))
    # Face geometry (face-local units: half-width a = 1).
    a = rng.uniform(0.2, 0.3) * S
    h = rng.uniform(1.2, 1.45)
    cx, cy = rng.uniform(0.4, 0.6) * S, rng.uniform(0.42, 0.58) * S
    ang = np.deg2rad(rng.normal(0, 9))
    yaw = rng.uniform(-0.15, 0.15)
    ca, sa = np.cos(ang), np.sin(ang)

    def P(u: float, v: float) -> tuple[float, float]:
        return (cx + a * (ca * u - sa * v), cy + a * (sa * u + ca * v))

    def E(u: float, v: float, ru: float, rv: float, col: np.ndarray, rot: float = 0.0) -> None:
        x, y = P(u, v)
        shape(_poly(x, y, a * ru, a * rv, ang + rot), col)

    skin = (1 - (s := rng.uniform())) * np.array([250, 218, 190]) + s * np.array([95, 60, 40])
    skin = skin + rng.normal(0, 8, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 10, 3)
    cloth = rng.uniform(0, 255, 3)
    E(0, h + 1.5, 2.3, 1.1, cloth)  # shoulders
    shape([P(-0.42, 0.4 * h), P(0.42, 0.4 * h), P(0.45, h + 0.8), P(-0.45, h + 0.8)], skin * 0.82)  # neck
    bald = rng.random() < 0.1
    if not bald:
        if rng.random() < 0.4:  # long hair
            E(0, 0.2 * h, 1.25, 1.2 * h, hair * 0.9)
        E(0, -0.2 * h, 1.12, 0.98 * h, hair)
    for sx in (-1, 1):
        E(sx * 0.98 + yaw * 0.5, 0.05 * h, 0.16, 0.26, skin * 0.93)  # ears
    E(yaw * 0.3, 0, 1.0, h, skin)
    if not bald:  # fringe over the forehead
        E(yaw * 0.3, -0.88 * h, 1.0, rng.uniform(0.25, 0.5) * h, hair)
    ex, ey, eo = rng.uniform(0.32, 0.44), rng.uniform(-0.2, 0.0) * h, rng.uniform(0.55, 1.2)
    iris, gaze = _IRIS[rng.integers(len(_IRIS))] + rng.normal(0, 10, 3), rng.uniform(-0.05, 0.05, 2)
    brow_t = rng.uniform(-0.08, 0.08)
    for sx in (-1, 1):
        u = sx * ex + yaw
        E(u, ey, 0.19, 0.085 * eo, np.array([235, 232, 225]))
        E(u + gaze[0], ey + gaze[1] * 0.3, 0.075, 0.075 * min(eo, 1.0), iris)
        E(u + gaze[0], ey + gaze[1] * 0.3, 0.035, 0.035 * min(eo, 1.0), np.array([15, 12, 10]))
        E(u, ey - 0.2, 0.2, 0.035, hair * 0.7, sx * brow_t)  # brow
    nose = skin * rng.uniform(0.7, 0.85)
    shape([P(yaw * 1.3 - 0.03, ey + 0.1), P(yaw * 1.3 + 0.03, ey + 0.1), P(yaw * 1.3 + 0.04, 0.36 * h)], nose)
    for sx in (-1, 1):
        E(yaw * 1.3 + sx * 0.09, 0.38 * h, 0.05, 0.03, nose * 0.7)
    my, mw = rng.uniform(0.55, 0.7) * h, rng.uniform(0.25, 0.42)
    lips = skin * np.array([0.95, 0.6, 0.6]) + rng.normal(0, 8, 3)
    if rng.random() < 0.3:  # open mouth
        E(yaw, my, mw, rng.uniform(0.07, 0.13), lips)
        E(yaw, my, mw * 0.8, rng.uniform(0.03, 0.07), np.array([40, 15, 15]))
    else:
        E(yaw, my, mw, rng.uniform(0.04, 0.08), lips)
    if rng.random() < 0.15:  # glasses
        frame = _col(rng.uniform(0, 120, 3))
        for sx in (-1, 1):
            x, y = P(sx * ex + yaw, ey)
            dc.ellipse(
                [x - 0.25 * a, y - 0.2 * a, x + 0.25 * a, y + 0.2 * a], outline=frame, width=max(1, S // 64)
            )
    fg = np.asarray(canvas.reduce(2), np.float32)  # premultiplied by coverage
    m = np.asarray(mask.reduce(2), np.float32)[..., None] / 255.0
    # Directional lighting on the person, skin mottling, then global exposure / white balance.
    lphi, k = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.35)
    shade = 1 + k * ((xx - cx / S) * np.cos(lphi) + (yy - cy / S) * np.sin(lphi)) / (a / S * 1.5)
    fg = fg * np.clip(shade, 0.4, 1.6)[..., None] * (1 + _smooth_noise(rng, size, 12, 0.04, 1))
    img = fg + (1 - m) * bg
    img = img * (rng.uniform(0.75, 1.15) * rng.uniform(0.92, 1.08, 3)).astype(np.float32)  # exposure, WB
    img += (
        rng.uniform(1.5, 5.0) * 3.46 * (rng.random(img.shape, np.float32) - 0.5)
    )  # sensor noise (uniform: 5x faster)
    geom = FaceGeom(cx / 2 + yaw * 0.3 * a / 2 * ca, cy / 2, a / 2, a * h / 2, float(ang))
    return np.clip(img, 0, 255).astype(np.float32), geom


def _face_mask(size: int, g: FaceGeom, scale: float, feather: float) -> np.ndarray:
    """Soft elliptical face mask (HxWx1 in [0, 1]), the kind of blending mask face-swaps paste with."""
    im = Image.new("L", (size, size))
    ImageDraw.Draw(im).polygon(_poly(g.cx, g.cy, g.rx * scale, g.ry * scale, g.angle), fill=255)
    im = im.filter(ImageFilter.GaussianBlur(feather))
    return np.asarray(im, np.float32)[..., None] / 255.0


def _tconv_up2(x: np.ndarray, side: np.ndarray) -> np.ndarray:
    """x2 upsampling as a stride-2 transposed conv with kernel [s, 1, s]: s != 0.5 leaves a checkerboard.

    Even output pixels copy one input, odd ones sum two inputs weighted by ``s``; the result is
    divided by the kernel's mean gain so brightness is preserved and only the period-2 pattern remains.
    """
    h, w, _ = x.shape
    z = np.zeros((2 * h + 2, 2 * w + 2, x.shape[2]), np.float32)
    z[1:-1:2, 1:-1:2] = x
    z[-1, 1:-1:2], z[1:-1:2, -1], z[-1, -1] = x[-1], x[:, -1], x[-1, -1]  # replicate the far border
    r = z[1:-1] + side * (z[:-2] + z[2:])
    out = r[:, 1:-1] + side * (r[:, :-2] + r[:, 2:])
    return out / ((1 + 2 * side) / 2) ** 2


def add_fake_traces(
    img: np.ndarray, g: FaceGeom, rng: np.random.Generator, record: dict | None = None
) -> np.ndarray:
    """Apply a random mix of generator traces (upsampling, spectral peaks, blending seam).

    ``record`` (optional) receives which traces were applied, for per-trace error analysis.
    """
    rec = {} if record is None else record
    size = img.shape[0]
    px = size / 64.0  # pixel scale relative to the 64-px reference
    use = rng.random(3) < (0.6, 0.5, 0.45)  # upsampling, spectral peaks, blending seam
    if not use.any():  # at least one trace; the lattice alone is the hardest case, keep it rarer (~11%)
        use[rng.choice([0, 2])] = True
    if use[0]:  # upsampling: decoder rendered at low resolution, then upsampled
        f = 4 if size >= 128 and rng.random() < 0.3 else 2
        low = img.reshape(size // f, f, size // f, f, 3).mean((1, 3))
        rec["upsample"] = "nearest" if rng.random() < 0.5 else "tconv"
        if rec["upsample"] == "nearest":
            up = np.repeat(np.repeat(low, f, 0), f, 1)
        else:
            side = rng.choice([-1, 1]) * rng.uniform(0.08, 0.2) + 0.5 + rng.normal(0, 0.02, 3)
            up = low
            for _ in range(f // 2):
                up = _tconv_up2(up, side.astype(np.float32))
        whole = rng.random() < 0.5
        region = 1.0 if whole else _face_mask(size, g, 1.1, 2 * px)
        a = rng.uniform(0.6, 1.0)
        rec["upsample"] += f"/{'image' if whole else 'face'}/f={f}/a={a:.2f}"
        a = a * region
        img = (1 - a) * img + a * up
    if use[1]:  # spectral peaks: faint periodic lattice (periods of upsampling layers), random phase
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        per = rng.choice([2.0, 3.0, 4.0], p=[0.4, 0.2, 0.4])
        th0 = (0.0 if rng.random() < 0.75 else np.pi / 4) + rng.normal(0, 0.03)
        for th in (th0, th0 + np.pi / 2):
            phase = rng.uniform(0, 2 * np.pi) if per > 2 else rng.choice([0.0, np.pi])  # Nyquist: no cancel
            wave = np.cos(2 * np.pi * (xx * np.cos(th) + yy * np.sin(th)) / per + phase)
            amp = rng.uniform(4.0, 8.0)
            rec.setdefault("grid", []).append(f"per={per:.1f}/amp={amp:.1f}")
            img = img + amp * wave[..., None] * rng.uniform(0.7, 1.0, 3).astype(np.float32)
    if use[2]:  # blending seam: face pasted with a soft mask and a colour/sharpness mismatch
        pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        blur = rng.uniform(0.7, 1.4) * px
        rec["seam"] = f"blur={blur:.2f}"
        inner = np.asarray(pil.filter(ImageFilter.GaussianBlur(blur)), np.float32)
        inner = inner + (rng.choice([-1, 1], 3) * rng.uniform(3, 10, 3)).astype(np.float32)
        m = _face_mask(size, g, rng.uniform(0.8, 1.05), rng.uniform(0.6, 2.0) * px)
        img = m * inner + (1 - m) * img
    return np.clip(img, 0, 255)
