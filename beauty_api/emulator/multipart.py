"""Reading a multipart/form-data submit: the text fields and the `image` part.

Why not a library: the emulator ships inside the package (the offline demo), so a parser from
outside the standard library (requests-toolbelt's MultipartDecoder, python-multipart) would become
a runtime dependency of every install; `cgi` is gone in 3.13; and the standard library's email
parser over a whole upload is slow enough to show in the client's benchmarks (docs/development.md).
So the body is split on the boundary here, and only each part's small header block goes through
the email package (`email.parser.BytesHeaderParser`).
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
from dataclasses import dataclass


@dataclass(frozen=True)
class ImagePart:
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class SubmitRequest:
    """A parsed submit: the text fields (first value of each name) and the `image` part."""

    fields: dict[str, str]
    image: ImagePart | None
    part_names: tuple[str, ...]


def parse_multipart(content_type: str, body: bytes) -> SubmitRequest:
    """Parse a multipart/form-data body (the `cgi` module is gone in 3.13).

    Parts are split on the boundary by hand and only their small header blocks go through the
    email package (the module docstring says why).
    """
    if not content_type.lower().startswith("multipart/form-data"):
        return SubmitRequest({}, None, ())
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return SubmitRequest({}, None, ())
    values: dict[str, str] = {}
    image: ImagePart | None = None
    names: list[str] = []
    # Every delimiter but the first follows a CRLF; prefixing one makes them all alike.
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter
            break
        head, separator, payload = chunk.partition(b"\r\n\r\n")
        if not separator:
            continue
        part = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(
            head.lstrip(b"\r\n") + b"\r\n\r\n"
        )
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        names.append(name)
        if name == "image":
            if image is None:
                image = ImagePart(part.get_filename(), part.get("Content-Type"), payload)
        elif name not in values:
            values[name] = payload.decode("utf-8", "replace")
    return SubmitRequest(values, image, tuple(names))
