"""Beauty parameters: the six sliders and the filter, validated before anything is sent.

The field names are exactly the API's form fields, so a parameter object maps onto the
request with no renaming table to keep in sync.
"""

from __future__ import annotations

import difflib
import numbers
from dataclasses import dataclass
from typing import Any

from .errors import InvalidParameterError

SLIDER_NAMES: tuple[str, ...] = (
    "whitening",
    "smoothing",
    "thinface",
    "shrink_face",
    "enlarge_eye",
    "remove_eyebrow",
)
SLIDER_MIN = 0
SLIDER_MAX = 100
SLIDER_DEFAULT = 50

SLIDER_DESCRIPTIONS: dict[str, str] = {
    "whitening": "Skin whitening: 0 leaves the skin tone as it is, 100 is the strongest whitening.",
    "smoothing": "Skin smoothing: 0 keeps every skin detail, 100 smooths the skin the most.",
    "thinface": "Face slimming: 0 keeps the face shape, 100 slims the cheeks and jaw the most.",
    "shrink_face": "Small face: 0 keeps the face size, 100 makes the whole face the smallest.",
    "enlarge_eye": "Big eyes: 0 keeps the eyes as they are, 100 enlarges them the most.",
    "remove_eyebrow": "Eyebrow removal: 0 keeps the eyebrows, 100 removes them the most.",
}

# The 35 filters, numbered as the API numbers them, with the official English names.
FILTER_NAMES: tuple[str, ...] = (
    "Black and White", "Calm", "Sunny Day", "Journey", "Beautify Skin",
    "Hong Kong Style", "Aesthetic", "Lovely", "New York", "Sakura",
    "Seventeen", "Soft Light", "Afternoon Tea", "Brighten Skin", "Chaplin",
    "Floral", "Memories", "Ice Beauty", "Paris", "Time",
    "LOMO", "Old Times", "Early Spring", "Story", "Abao Color",
    "Fill Light", "Warm", "Gorgeous", "Lavender", "Chanel",
    "Prague", "Old Dreams", "Peach Blossom", "Pink", "Misty Rain",
)  # fmt: skip
NO_FILTER = "none"
_FILTER_BY_KEY = {name.casefold(): number for number, name in enumerate(FILTER_NAMES, start=1)}


def filter_name(number: int) -> str:
    """Official name of filter `number` (1..35)."""
    return FILTER_NAMES[number - 1]


def resolve_filter(value: Any) -> int | None:
    """Turn a filter given by number, digits or name (any case) into its number; None means no filter.

    `None`, `""`, `"none"` and `0` all mean "no filter", so a UI default and an omitted
    argument behave the same.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidParameterError(
            f"filter_type: {value!r} is not a filter; give a number 1..35, a filter name, or 'none'."
        )
    if isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer()):
        number = int(value)
        if number == 0:
            return None
        if 1 <= number <= len(FILTER_NAMES):
            return number
        raise InvalidParameterError(
            f"filter_type: {number} is out of range; filters are numbered 1..{len(FILTER_NAMES)}, "
            "or use 'none' for no filter."
        )
    if isinstance(value, str):
        text = " ".join(value.split())
        if text.casefold() in ("", NO_FILTER):
            return None
        if text.isdigit():
            return resolve_filter(int(text))
        number = _FILTER_BY_KEY.get(text.casefold())
        if number is not None:
            return number
        close = difflib.get_close_matches(text.casefold(), list(_FILTER_BY_KEY), n=3, cutoff=0.5)
        hint = ", ".join(repr(filter_name(_FILTER_BY_KEY[key])) for key in close)
        suggestion = f" Did you mean {hint}?" if hint else ""
        raise InvalidParameterError(
            f"filter_type: unknown filter {value!r}.{suggestion} "
            "Run `python -m beauty_api filters` for the list of 35 names."
        )
    raise InvalidParameterError(
        f"filter_type: {value!r} ({type(value).__name__}) is not a filter; "
        "give a number 1..35, a filter name, or 'none'."
    )


def _check_slider(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(
            f"{name}: {value!r} is not an integer; give a whole number {SLIDER_MIN}..{SLIDER_MAX}."
        )
    if not isinstance(value, numbers.Integral) and not float(value).is_integer():
        raise InvalidParameterError(
            f"{name}: {value!r} is not a whole number; give an integer {SLIDER_MIN}..{SLIDER_MAX}."
        )
    number = int(value)
    if not SLIDER_MIN <= number <= SLIDER_MAX:
        raise InvalidParameterError(
            f"{name}: {number} is out of range; allowed {SLIDER_MIN}..{SLIDER_MAX} "
            f"(0 = no effect, 100 = strongest)."
        )
    return number


@dataclass(frozen=True)
class BeautyParams:
    """The API's beauty settings, validated on construction; immutable and hashable.

    `filter_type` may be given as a number, digits or a name; it is stored as the number
    (or None for no filter).
    """

    whitening: int = SLIDER_DEFAULT
    smoothing: int = SLIDER_DEFAULT
    thinface: int = SLIDER_DEFAULT
    shrink_face: int = SLIDER_DEFAULT
    enlarge_eye: int = SLIDER_DEFAULT
    remove_eyebrow: int = SLIDER_DEFAULT
    filter_type: int | None = None

    def __post_init__(self) -> None:
        for name in SLIDER_NAMES:
            object.__setattr__(self, name, _check_slider(name, getattr(self, name)))
        object.__setattr__(self, "filter_type", resolve_filter(self.filter_type))

    @property
    def filter_label(self) -> str:
        """The filter's official name, or 'none'."""
        return NO_FILTER if self.filter_type is None else filter_name(self.filter_type)

    def to_form(self) -> dict[str, str]:
        """The multipart text fields: every slider, and `filter_type` only when a filter is chosen."""
        form = {name: str(getattr(self, name)) for name in SLIDER_NAMES}
        if self.filter_type is not None:
            form["filter_type"] = str(self.filter_type)
        return form
