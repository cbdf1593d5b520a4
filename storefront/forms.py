"""Reading HTML form posts: the one place a form body is parsed, so a body that is not a readable
form is a 400 for every route that reads one (the CSRF check and the pages alike)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from multidict import MultiDictProxy

from storefront.errors import ApiError


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """The fields of a urlencoded or multipart body, each as text.

    400 when the body cannot be read as a form: bytes that are not in its charset, an unknown
    charset, a multipart body without boundary or with broken or nameless parts; 415 for file
    uploads, which no form of Kwika takes. A body too large is still 413 (aiohttp's own error).
    """
    try:
        form = await request.post()
    except (ValueError, LookupError, BadHttpMessage, RuntimeWarning) as exc:
        # UnicodeDecodeError is a ValueError; LookupError: an unknown charset; BadHttpMessage: a
        # part's headers are broken; RuntimeWarning: aiohttp's warning about a malformed
        # Content-Disposition, raised where warnings are errors (the tests)
        raise ApiError(400, "malformed_form", f"the form could not be read: {_reason(exc)}") from None
    for name, value in form.items():
        if not isinstance(value, str):
            raise ApiError(415, "unsupported_media_type",
                           f"{name} is a file; forms here take text fields only", {name: "file"})
    return form  # type: ignore[return-value]  # every value is text, checked above


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"it is not valid {exc.encoding}"
    if isinstance(exc, LookupError):
        return "its charset is unknown"
    if isinstance(exc, BadHttpMessage):
        return "a part's headers are malformed"
    return str(exc) or type(exc).__name__
