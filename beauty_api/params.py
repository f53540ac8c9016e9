"""Beauty parameters: the six sliders and the filter, validated before anything is sent.

The field names are exactly the API's form fields, so a parameter object maps onto the
request with no renaming table to keep in sync.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
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
        by_name = _FILTER_BY_KEY.get(text.casefold())
        if by_name is not None:
            return by_name
        hint = ", ".join(
            repr(filter_name(_FILTER_BY_KEY[key])) for key in _close_filter_keys(text.casefold())
        )
        suggestion = f" Did you mean {hint}?" if hint else ""
        raise InvalidParameterError(
            f"filter_type: unknown filter {value!r}.{suggestion} "
            "Run `python -m beauty_api filters` for the list of 35 names."
        )
    raise InvalidParameterError(
        f"filter_type: {value!r} ({type(value).__name__}) is not a filter; "
        "give a number 1..35, a filter name, or 'none'."
    )


def _close_filter_keys(typed: str) -> list[str]:
    """Filter names worth suggesting for an unknown one: names it starts (e.g. "soft" ->
    Soft Light) and near-typos ("sakrua"); nothing for an unrelated word ("vintage")."""
    keys = list(_FILTER_BY_KEY)
    squeezed = typed.replace(" ", "")
    starts = [key for key in keys if len(squeezed) >= 3 and key.replace(" ", "").startswith(squeezed)]
    typos = difflib.get_close_matches(typed, keys, n=3, cutoff=0.75)
    return list(dict.fromkeys(starts + typos))[:3]


def _check_slider(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(
            f"{name}: {value!r} is not an integer; give a whole number {SLIDER_MIN}..{SLIDER_MAX}."
        )
    if not isinstance(value, numbers.Integral) and not float(value).is_integer():
        raise InvalidParameterError(
            f"{name}: {value!r} is not a whole number; give an integer {SLIDER_MIN}..{SLIDER_MAX}."
        )
    # Exact: a non-Integral value is a whole number here (checked above through float as well).
    number = int(value) if isinstance(value, numbers.Integral) else int(float(value))
    if not SLIDER_MIN <= number <= SLIDER_MAX:
        raise InvalidParameterError(
            f"{name}: {number} is out of range; allowed {SLIDER_MIN}..{SLIDER_MAX} "
            f"(0 = no effect, 100 = strongest)."
        )
    return number


@dataclass(frozen=True, init=False)
class BeautyParams:
    """The API's beauty settings, validated on construction; immutable and hashable.

    The constructor takes what people give: sliders as whole numbers (50 or 50.0), and
    `filter_type` as a number, digits or a name. The fields hold what the API gets: ints, and
    the filter's number (or None for no filter). Untyped input (a dict from a file or a command
    line) goes through `from_mapping`.
    """

    whitening: int
    smoothing: int
    thinface: int
    shrink_face: int
    enlarge_eye: int
    remove_eyebrow: int
    filter_type: int | None

    def __init__(
        self,
        whitening: float = SLIDER_DEFAULT,
        smoothing: float = SLIDER_DEFAULT,
        thinface: float = SLIDER_DEFAULT,
        shrink_face: float = SLIDER_DEFAULT,
        enlarge_eye: float = SLIDER_DEFAULT,
        remove_eyebrow: float = SLIDER_DEFAULT,
        filter_type: int | str | None = None,
    ) -> None:
        sliders = (whitening, smoothing, thinface, shrink_face, enlarge_eye, remove_eyebrow)
        for name, value in zip(SLIDER_NAMES, sliders, strict=True):
            object.__setattr__(self, name, _check_slider(name, value))
        object.__setattr__(self, "filter_type", resolve_filter(filter_type))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BeautyParams:
        """Build from a dict, refusing unknown keys with the list of known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidParameterError(
                f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}."
            )
        return cls(**values)

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
