"""Landmark index sets of MediaPipe's 478-point face mesh (Face Mesh V2: 468 mesh points + 10 iris points).

"Left" and "right" are the SUBJECT's, as in MediaPipe: the subject's right eye appears on the IMAGE's
left for a face looking at the camera (its iris centre is point 468; the subject's left iris is 473).

Every contour is a closed polygon listed in order around its outline (the last point joins the first),
so it can be rasterised directly. Index values follow MediaPipe's canonical face model; the nostril
polygons are this project's choice (MediaPipe names no nostril set), traced on the reference portraits.
"""

from __future__ import annotations

NUM_LANDMARKS = 478
NUM_MESH_POINTS = 468

# Face outline (MediaPipe's "silhouette"), from the forehead top (10) clockwise on screen.
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip

# Eye openings (the lid margins): outer corner, upper lid, inner corner, lower lid.
RIGHT_EYE: tuple[int, ...] = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE: tuple[int, ...] = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)

# Eyebrows: upper edge from the outer end inward, then the lower edge back out.
RIGHT_BROW: tuple[int, ...] = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW: tuple[int, ...] = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)

# Lips: outer and inner (mouth opening) contours, from the right mouth corner along the upper lip.
LIPS_OUTER: tuple[int, ...] = (
    61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146,
)  # fmt: skip
LIPS_INNER: tuple[int, ...] = (
    78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95,
)  # fmt: skip

# Nostril openings (this project's polygons, mirror images of each other through the mesh's symmetry).
RIGHT_NOSTRIL: tuple[int, ...] = (166, 218, 237, 44, 125, 241, 20, 60, 75)
LEFT_NOSTRIL: tuple[int, ...] = (392, 438, 457, 274, 354, 461, 250, 290, 305)

# Irises: centre first, then four points on the iris edge.
RIGHT_IRIS: tuple[int, ...] = (468, 469, 470, 471, 472)
LEFT_IRIS: tuple[int, ...] = (473, 474, 475, 476, 477)
RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473

# Points used to build a face's region of interest from landmarks (the eye corners and the oval).
RIGHT_EYE_OUTER_CORNER = 33
LEFT_EYE_OUTER_CORNER = 263
