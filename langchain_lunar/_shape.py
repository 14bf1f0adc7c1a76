"""The error of a server's answer that has a field of the wrong type."""

from __future__ import annotations


class ShapeError(Exception):
    """A field of the server's answer holds a JSON value of a type the protocol does not allow.

    Raised by the checks of ``_responses`` and ``_media_out`` with a description of the field
    (``"choices that is not a list"``); the transport turns it into a
    ``MalformedResponseError`` that quotes the event or answer it came from.
    """
