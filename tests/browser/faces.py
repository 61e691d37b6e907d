"""Test instrumentation: the fake camera's face performing the capture page's actions.

The cameras of the browser tests film one scene (tests/browser/conftest.py `_scene_png`: the
astronaut of `skimage.data.astronaut()`, 1000 px wide, on a wall, 720x560). Here the same scene is
warped (`skimage.transform.PiecewiseAffineTransform`) so that only the eyes or the mouth move:

- ``neutral``: the scene as it is (eyes open, lips slightly apart in a smile);
- ``mouth``: the mouth wide open (the jaw and lower lip down, a dark mouth behind the teeth);
- ``eyes``: both eyes closed (the lids warped shut, skin over the eye, a curved line of lashes);
- ``both``: both at once;
- ``talk1`` … ``talk3``: the mouth a little open, more each level (the lips of someone reading
  digits aloud), all clearly below ``mouth``.

What face-api's tiny 68-point landmark model (the one the page runs) reads, over 20 pan offsets of
the camera (640x480 crops at x 28..52, y 32..48; their middle 3:4, as the 3:4 preview shows it,
drawn 180 px wide as coach.js `grab` does; 240 or 320 px read the same): eye aspect ratio (EAR,
both eyes) and inner-lip gap over mouth width, mean (min-max):

    neutral  EAR 0.287 (0.279-0.295)  mouth 0.151 (0.138-0.175)
    eyes     EAR 0.220 (0.210-0.233)  mouth 0.161 (0.141-0.178)
    mouth    EAR 0.280 (0.273-0.288)  mouth 0.331 (0.304-0.357)
    both     EAR 0.217 (0.212-0.228)  mouth 0.331 (0.309-0.364)
    talk1/2/3                          mouth 0.178 / 0.206 / 0.229 (0.158-0.260 in all)

CONTROL POINTS: the landmarks below are what face-api's tiny landmark net
(`faceapi.detectSingleFace(img, new faceapi.TinyFaceDetectorOptions({inputSize: 224}))
.withFaceLandmarks(true)`, face_landmark_68_tiny_model, wasm backend, headless Chromium) found on
the neutral scene, in its pixels (x, y), rounded to 0.1 px. Points are numbered as in the 68-point
scheme (36-41 the eye on the picture's left, 42-47 the other, 48-67 the lips).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# The landmarks of the neutral scene (size 1000 at the scene's layout), by 68-point index.
LANDMARKS: dict[int, tuple[float, float]] = {
    0: (265.4, 224.1), 1: (265.9, 249.3), 2: (269.0, 272.5), 3: (270.7, 294.2),
    4: (277.1, 318.2), 5: (289.8, 336.6), 6: (303.0, 352.0), 7: (321.6, 367.8),
    8: (351.5, 378.4), 9: (381.6, 372.3), 10: (402.5, 359.7), 11: (417.1, 346.8),
    12: (431.5, 327.4), 13: (439.9, 304.4), 14: (444.0, 283.6), 15: (449.8, 261.0),
    16: (453.5, 237.1),
    17: (285.6, 204.2), 18: (296.6, 198.2), 19: (311.4, 197.1), 20: (324.8, 200.1),
    21: (336.5, 206.1), 22: (385.6, 208.6), 23: (397.9, 205.3), 24: (412.0, 204.4),
    25: (426.2, 208.1), 26: (437.4, 215.6),
    27: (359.3, 233.3), 28: (358.1, 252.0), 29: (356.2, 268.1), 30: (355.7, 281.5),
    31: (337.9, 284.9), 32: (345.6, 288.4), 33: (354.7, 291.4), 34: (365.7, 289.7),
    35: (373.4, 287.9),
    36: (302.7, 225.3), 37: (311.7, 222.5), 38: (322.9, 222.8), 39: (334.0, 230.4),
    40: (323.7, 232.8), 41: (311.5, 230.3),
    42: (384.5, 233.6), 43: (397.9, 228.1), 44: (408.8, 229.0), 45: (417.9, 234.2),
    46: (408.3, 238.4), 47: (395.7, 237.0),
    48: (312.2, 304.6), 49: (326.8, 302.4), 50: (345.3, 302.6), 51: (354.4, 305.4),
    52: (363.3, 304.7), 53: (382.4, 306.4), 54: (396.1, 311.0), 55: (380.8, 326.1),
    56: (367.0, 332.9), 57: (353.1, 334.0), 58: (339.6, 331.4), 59: (326.1, 323.4),
    60: (314.8, 305.7), 61: (341.4, 308.3), 62: (353.6, 309.9), 63: (366.8, 310.0),
    64: (394.4, 310.4), 65: (366.0, 322.7), 66: (353.5, 323.5), 67: (341.6, 321.1),
}
SCENE = (560, 720)  # rows, columns of conftest's scene
WINDOW = (120, 213, 460, 503)  # top, left, bottom, right of what the warp may change
STEP = 3  # px between the points the warp is worked out at (bilinear between)

# How far (px) the lower lip drops for each picture; 0 keeps the mouth as it is.
MOUTH_DROP = {"neutral": 0, "eyes": 0, "mouth": 20, "both": 20,
              "talk1": 3, "talk2": 6, "talk3": 8}
EYES_CLOSED = {"eyes", "both"}
TALK = ("talk1", "talk2", "talk3")
# Talking, frame by frame at 20 fps (0 the neutral mouth, 1..3 TALK[0..2]), looped every second:
# syllables of uneven length, ~4-5 a second, so that a page looking every 100 or 250 ms sees the
# lips at different openings. engines/camera.js has the same list (TALK).
TALK_FRAMES = (0, 1, 3, 3, 1, 0, 2, 2, 0, 1, 3, 2, 0, 0, 2, 3, 1, 0, 1, 2)
PICTURES = tuple(MOUTH_DROP)
DARK_MOUTH = np.array([62.0, 22.0, 24.0])  # the inside of an open mouth
UPPER_TEETH = 5.0  # px of upper teeth still seen under the upper lip of an open mouth

# Closed eyes. The tiny landmark net hardly follows lids drawn onto the lower lid (EAR 0.29 →
# 0.25); what it does follow is where the line of a closed eye is: drawn a little below the open
# eye's corners and curving down (as a closed lid does), wider than the opening, it reads
# EAR ~0.21. So: the lids warped shut, the eye's opening covered with the skin around it, and a
# line of lashes from corner to corner.
EYES = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47))  # corner, upper lid, corner, lower lid
EYE_MEET = 1.0                 # where warped lids meet: 0 at the upper lid, 1 at the lower one
EYE_PAINT_GROW = (1.3, 2.5)    # the skin painted over the eye: the opening grown this much (x, y)
LASH_DROP = 8.0                # px the lash line's ends are below the eye's corners
LASH_SAG = 6.0                 # px its middle curves further down
LASH_WIDEN = 5.0               # px it reaches beyond each corner
LASH_WIDTH = 3.5               # its darkness/thickness (a gain on a blurred 1 px line)
LASHES = np.array([70.0, 48.0, 42.0])  # its colour


def _p(i: int) -> np.ndarray:
    return np.array(LANDMARKS[i])


def _control_points(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(where each control point is in the neutral scene, where it goes in picture `name`), as
    (x, y) rows. Points on the face's outline, nose, brows and the scene's border stay."""
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []

    def keep(*points):
        for point in points:
            src.append(np.asarray(point, float))
            dst.append(np.asarray(point, float))

    def move(point, by):
        src.append(np.asarray(point, float))
        dst.append(np.asarray(point, float) + np.asarray(by, float))

    top, left, bottom, right = WINDOW
    for x in np.linspace(left, right, 7)[1:-1]:
        keep((x, top), (x, bottom))
    for y in np.linspace(top, bottom, 7)[1:-1]:
        keep((left, y), (right, y))
    keep(*(LANDMARKS[i] for i in (0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16)))  # the outline
    keep(*(LANDMARKS[i] for i in range(17, 36)))  # brows and nose
    # a ring around the face, well outside it, so nothing beyond it moves
    centre = np.array([358.0, 290.0])
    for angle in np.linspace(0, 2 * np.pi, 16, endpoint=False):
        keep(centre + [125 * np.cos(angle), 150 * np.sin(angle)])

    # eyes: the lids meet at EYE_MEET of the way from the upper to the lower one (the skin
    # above and below following part of the way)
    closed = name in EYES_CLOSED
    for eye in EYES:
        corner_a, upper, corner_b, lower = eye[0], eye[1:3], eye[3], eye[5:3:-1]
        keep(LANDMARKS[corner_a], LANDMARKS[corner_b])
        keep(_p(corner_a) + (-6, 0), _p(corner_b) + (6, 0))
        for u, low in zip(upper, lower):
            meet = _p(u)[1] + (_p(low)[1] - _p(u)[1]) * EYE_MEET
            down = meet - 0.75 - _p(u)[1] if closed else 0.0
            up = meet + 0.75 - _p(low)[1] if closed else 0.0
            move(LANDMARKS[u], (0, down))
            move(_p(u) - (0, 9), (0, down * 0.4))    # the lid's crease
            move(LANDMARKS[low], (0, up))
            move(_p(low) + (0, 7), (0, up * 0.4))    # the cheek under the eye

    # mouth: corners and upper lip stay; the lower lip and its inner edge drop, the chin less
    drop = MOUTH_DROP[name]
    keep(*(LANDMARKS[i] for i in (48, 49, 50, 51, 52, 53, 54, 60, 61, 62, 63, 64)))
    for i in (55, 56, 57, 58, 59, 65, 66, 67):
        move(LANDMARKS[i], (0, drop))
    for i in (6, 7, 8, 9, 10):
        move(LANDMARKS[i], (0, drop * 0.6))
    return np.array(src), np.array(dst)


def _mouth_inside(name: str) -> np.ndarray:
    """The polygon (x, y rows) of the dark inside of the open mouth in picture `name`."""
    drop = MOUTH_DROP[name]
    teeth = min(UPPER_TEETH, drop * 0.5)
    top = [_p(i) + (0, teeth) for i in (61, 62, 63)]
    bottom = [_p(i) + (0, drop - 1) for i in (65, 66, 67)]
    return np.array([_p(60) + (3, 1.5), *top, _p(64) + (-3, 1.5), *bottom])




def _paint_closed_eyes(out: np.ndarray) -> np.ndarray:
    """Lid skin over each eye (the skin around it, smoothed in), and a line of lashes from corner
    to corner (see LASH_DROP...)."""
    from scipy import ndimage
    from skimage import draw

    for eye in EYES:
        points = np.array([LANDMARKS[i] for i in eye])
        centre = points.mean(axis=0)
        grown = centre + (points - centre) * EYE_PAINT_GROW  # wider, and well above and below
        mask = np.zeros(SCENE)
        rr, cc = draw.polygon(grown[:, 1], grown[:, 0], SCENE)
        mask[rr, cc] = 1.0
        # the skin around the eye, spread over it (a blur that leaves the eye itself out)
        around = 1 - mask
        weight = ndimage.gaussian_filter(around, 5)[..., None]
        skin = np.stack([ndimage.gaussian_filter(out[..., c] * around, 5) for c in range(3)],
                        axis=-1) / np.maximum(weight, 1e-6)
        soft = ndimage.gaussian_filter(mask, 1.5)[..., None]
        out = out * (1 - soft) + skin * soft
        # the lashes
        (xa, ya), (xb, yb) = points[0] - (LASH_WIDEN, 0), points[3] + (LASH_WIDEN, 0)
        t = np.linspace(0, 1, 40)
        xs = xa + (xb - xa) * t
        ys = ya + (yb - ya) * t + LASH_SAG * 4 * t * (1 - t) + LASH_DROP
        line = np.zeros(SCENE)
        for x0, y0, x1, y1 in zip(xs, ys, xs[1:], ys[1:]):
            rr, cc, value = draw.line_aa(round(y0), round(x0), round(y1), round(x1))
            line[rr, cc] = np.maximum(line[rr, cc], value)
        line = (ndimage.gaussian_filter(line, 0.8) * LASH_WIDTH).clip(0, 1)[..., None]
        out = out * (1 - line) + LASHES * line
    return out


def warp(scene: np.ndarray, name: str) -> np.ndarray:
    """The scene (the size-1000 face at conftest's layout; float, 0..255, rows x cols x 3) with
    the face performing `name` (one of PICTURES)."""
    from scipy import ndimage
    from skimage import draw, transform

    if name == "neutral":
        return scene
    if scene.shape[:2] != SCENE:
        raise ValueError(f"a performing face needs the {SCENE} scene, not {scene.shape[:2]}")
    src, dst = _control_points(name)
    # Only the window the control points span changes (its border stays): warp that alone.
    top, left = WINDOW[0], WINDOW[1]
    inside = (src[:, 0] >= left) & (src[:, 0] <= WINDOW[3]) & (src[:, 1] >= top) \
        & (src[:, 1] <= WINDOW[2])
    shift = np.array([left, top])
    corners = np.array([(x, y) for x in (0, WINDOW[3] - left) for y in (0, WINDOW[2] - top)], float)
    src = np.concatenate([src[inside] - shift, corners])
    dst = np.concatenate([dst[inside] - shift, corners])
    if hasattr(transform.PiecewiseAffineTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = transform.PiecewiseAffineTransform.from_estimate(dst, src)  # output → input
        if not tform:
            raise RuntimeError(f"no warp for {name}: {tform}")
    else:
        tform = transform.PiecewiseAffineTransform()
        if not tform.estimate(dst, src):
            raise RuntimeError(f"no warp for {name}")
    # Where each pixel of the window comes from, worked out on every STEP-th pixel (the warp is
    # smooth; the transform is slow per point) and filled in between.
    rows, cols = WINDOW[2] - top + 1, WINDOW[3] - left + 1
    y, x = np.mgrid[0:rows + STEP:STEP, 0:cols + STEP:STEP]
    source = tform(np.column_stack([x.ravel(), y.ravel()]).astype(float))
    at = np.mgrid[0:rows, 0:cols] / STEP  # each pixel's place in the coarse grid
    fine = [ndimage.map_coordinates(source[:, axis].reshape(x.shape), at, order=1)
            for axis in (1, 0)]  # rows, columns
    out = scene.copy()
    part = scene[top:WINDOW[2] + 1, left:WINDOW[3] + 1]
    out[top:WINDOW[2] + 1, left:WINDOW[3] + 1] = np.stack(
        [ndimage.map_coordinates(part[..., c], fine, order=3, mode="nearest")
         for c in range(3)], axis=-1)
    if name in EYES_CLOSED:
        out = _paint_closed_eyes(out)
    if MOUTH_DROP[name]:
        polygon = _mouth_inside(name)
        mask = np.zeros(SCENE)
        rr, cc = draw.polygon(polygon[:, 1], polygon[:, 0], SCENE)
        mask[rr, cc] = 1.0
        mask = ndimage.gaussian_filter(mask, 1.0)[..., None]
        # the dark inside, a little of the stretched teeth and lips showing through
        out = out * (1 - mask) + (DARK_MOUTH * 0.7 + out * 0.15) * mask
    return out


def face_png(directory: Path, name: str) -> Path:
    """The PNG of the scene with the face performing `name` (made once per folder)."""
    from .conftest import _scene_png
    return _scene_png(directory, f"face-{name}" if name != "neutral" else "face", face=name)


if __name__ == "__main__":  # write every picture to a folder: python -m tests.browser.faces DIR
    import sys

    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for picture in PICTURES:
        print(face_png(folder, picture))
