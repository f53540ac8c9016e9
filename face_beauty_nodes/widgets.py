"""The widgets the API node and the offline node share: one definition, so both show the same
sliders and filter list (names, order, ranges, tooltips) and swapping one node for the other keeps
a workflow's settings."""

from __future__ import annotations

from typing import Any

from ..beauty_api.local.faces.limits import MAX_FACES, MAX_FACES_LIMIT
from ..beauty_api.params import (
    FILTER_NAMES,
    NO_FILTER,
    SLIDER_DEFAULT,
    SLIDER_DESCRIPTIONS,
    SLIDER_MAX,
    SLIDER_MIN,
    SLIDER_NAMES,
)

CATEGORY = "image/Face Beauty Pro"


def slider_widget(name: str) -> tuple[str, dict[str, Any]]:
    """One 0..100 beauty slider, with the parameter's description as its tooltip."""
    return (
        "INT",
        {
            "default": SLIDER_DEFAULT,
            "min": SLIDER_MIN,
            "max": SLIDER_MAX,
            "step": 1,
            "display": "slider",
            "tooltip": SLIDER_DESCRIPTIONS[name],
        },
    )


def retouch_widgets() -> dict[str, Any]:
    """The six sliders and the filter list, in the order the nodes show them."""
    widgets: dict[str, Any] = {name: slider_widget(name) for name in SLIDER_NAMES}
    widgets["filter_type"] = (
        [NO_FILTER, *FILTER_NAMES],
        {
            "default": NO_FILTER,
            "tooltip": "Colour filter applied with the retouch; 'none' applies no filter. "
            "The names are the API's 35 official filters, in its numbering order (1..35).",
        },
    )
    return widgets


def max_faces_widget() -> tuple[str, dict[str, Any]]:
    """The offline nodes' face limit: the best-scoring faces of each image are kept."""
    return (
        "INT",
        {
            "default": MAX_FACES,
            "min": 1,
            "max": MAX_FACES_LIMIT,
            "tooltip": "At most this many faces per image (the clearest first). Faces down to about "
            "40 px wide are found, in pictures of any size.",
        },
    )
