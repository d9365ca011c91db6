"""Watch a run in a browser: a small HTTP server as a sink (``livecam --serve [HOST:]PORT``).

The server offers three things and nothing else: the page (``/``), the
annotated video as MJPEG (``/stream.mjpg``, multipart/x-mixed-replace, shown
by a plain ``<img>``) and the run's state as JSON (``/status``: frame index,
top-K labels, the speed, dropped frames, source, viewers). The speed is the
latest frame's own readout (:class:`~livecam.types.Speed`: FPS, the engine's
milliseconds per frame, the latency), the very figures drawn on the video, so
the page does not repeat them. Any other path is
404 and any other method 405; no file is ever read from disk at a client's
request. The page, with its inline style and script, is one file shipped in
the package (``serve_page.html``, read once at import), so it can be read and
edited as HTML; its Content-Security-Policy allows that style and that script
alone, by their hashes.

The pipeline never waits for a viewer. :meth:`ServeSink.write` (on the
pipeline's writer thread) only keeps a reference to the latest image and
labels and wakes the server. The server runs aiohttp on its own event loop in
a daemon thread; it encodes a JPEG at most once per new frame, off the
pipeline's threads, only while someone watches, and shares it among the
viewers. Each viewer waits for a frame newer than the last it got, so a slow
viewer skips to the latest frame instead of building a queue; its socket
buffers are kept small, so that a viewer that pauses sees the present, not a
backlog.

Anyone who can reach the port can send what is not HTTP: a 10,000-character
URL, a 70 kB header, TLS or plain garbage. aiohttp answers these with 400 and
logs each as an error with a traceback of about ten lines, which would let any
client flood the operator's terminal. Its request handler logs instead through
:class:`_RequestLog`, which counts them (``bad_requests`` in ``/status``) and
says each in one debug line (``-vv``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict

import cv2
import numpy as np
from aiohttp import web
from aiohttp.http import HttpProcessingError

from livecam.choices import COLORMAPS
from livecam.controls import SMOOTH_STEPS, SettingsRecord
from livecam.errors import LivecamError, option
from livecam.sinks.base import Sink
from livecam.text import plural
from livecam.types import Annotated, Label, Speed

if TYPE_CHECKING:
    from livecam.controls import Controls

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_VIEWERS = 4
JPEG_QUALITY = 80
BOUNDARY = "frame"
STREAM_PATH = "/stream.mjpg"
STATUS_PATH = "/status"
CONTROL_PATH = "/control"
ROUTES = ("/", STREAM_PATH, STATUS_PATH, CONTROL_PATH)
TOKEN_HEADER = "X-Livecam-Token"
TOKEN_SLOT = 'content="{{token}}"'  # in the page's <meta name="livecam-token">: this server's token, or nothing
MAX_CONTROL_BYTES = 4096
LOOPBACK = ("127.0.0.1", "::1", "localhost")
PAGE_FILE = "serve_page.html"  # package data: the page, with its inline style and script
NOT_SENT_LOW = 16 * 1024  # a stream socket takes more only when less than this waits unsent in the kernel
CLOSE_GRACE_S = 1.0  # on close, streams get this long to end before they are cut

# what a logging call's exc_info may be (typeshed's logging._ExcInfoType)
_ExcInfo: TypeAlias = ("bool | tuple[type[BaseException], BaseException, TracebackType | None] "
                       "| tuple[None, None, None] | BaseException | None")

_ADDRESS = re.compile(r"(?:(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):)?(?P<port>\d{1,5})")


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); the host defaults to 127.0.0.1, port 0 means any free port."""
    match = _ADDRESS.fullmatch(text.strip())
    port = int(match["port"]) if match else -1
    if match is None or port > 65535:
        raise LivecamError(f"{option('serve')} {text!r} is not [HOST:]PORT; give a port (8080, or 0 for a free one), "
                           "or HOST:PORT such as 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080")
    host = (match["host"] or DEFAULT_HOST).strip("[]")
    return host, port


def url_for(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class LabelStatus(TypedDict):
    """A label as ``/status`` gives it."""

    name: str
    score: float
    explained: bool
    index: int


class ControlsStatus(TypedDict):
    """``/status``'s ``controls``: the view settings asked for, the method running now, and what may be chosen."""

    settings: SettingsRecord
    method: str  # the method running now (another one asked for runs once its graph is ready)
    methods: list[str]
    colormaps: list[str]
    max_rank: int
    panels: bool
    smooth_steps: list[float]  # empty: the engine does not smooth
    error: str | None  # why the last method asked for could not run


class Status(TypedDict):
    """The JSON of ``/status``: the run as the page shows it."""

    frame: int | None
    frames: int
    labels: list[LabelStatus]
    fps: float  # the figures of the latest frame's readout (0 and None before there are any)
    engine_ms: float | None
    latency_ms: float | None
    dropped: int
    source: str
    viewers: int
    max_viewers: int
    running: bool
    bad_requests: int
    controls: ControlsStatus | None  # None: the page only watches (--serve-controls off, or the model is loading)


@dataclass
class _Latest:
    """What the sink last received: the image (a reference, never copied), its labels and its frame index."""

    seq: int = 0  # 0: nothing yet
    image: np.ndarray | None = None
    labels: tuple[Label, ...] = ()
    index: int | None = None
    speed: Speed | None = None


class ServeSink(Sink):
    """Serve the annotated frames, their labels and the run's speed over HTTP (see the module's docstring).

    The server is listening when the constructor returns (``url`` says where;
    port 0 picks a free port), and stops in :meth:`close`, which ends the open
    streams. A port that cannot be bound raises :class:`LivecamError`.
    """

    main_thread = False

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, max_viewers: int = DEFAULT_MAX_VIEWERS,
                 source: str = "", jpeg_quality: int = JPEG_QUALITY, controls: bool = False) -> None:
        if max_viewers < 1:
            raise LivecamError(f"the number of viewers must be at least 1, not {max_viewers}")
        self.max_viewers = max_viewers
        self.source = source
        # live controls: with ``controls`` the page may change the view through POST /control, with the token it
        # was served; ``self.controls`` is set once the engine runs (until then /control answers 503)
        self.allow_controls = controls
        self.controls: Controls | None = None
        self.token = secrets.token_urlsafe(24)
        self.jpeg_quality = int(jpeg_quality)
        self.viewers = 0  # open streams; changed only on the server's loop
        self.frames = 0
        self.encoded = 0  # JPEGs made (at most one per frame, only while someone watches)
        self.bad_requests = 0  # requests that were not HTTP, answered 400; changed only on the server's loop
        self._lock = threading.Lock()
        self._latest = _Latest()
        self._dropped = 0
        self._closing = False
        self._closed = False
        self._jpeg: tuple[int, int | None, bytes] | None = None  # (seq, frame index, JPEG) of the last encoded
        self._streams: dict[asyncio.Task[Any], asyncio.Transport | None] = {}  # open streams and their connections
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="livecam-serve", daemon=True)
        self._thread.start()
        try:
            self.host, self.port = asyncio.run_coroutine_threadsafe(self._start(host, port), self._loop).result()
        except OSError as exc:
            self._stop_loop()
            reason = "the port is in use" if exc.errno in (98, 48, 10048) else (exc.strerror or str(exc))
            raise LivecamError(f"cannot serve on {url_for(host, port)}: {reason}; choose another "
                               f"{option('serve')} port (0 picks a free one)") from None
        self.url = url_for(self.host, self.port)

    # -- the pipeline's side (writer thread): cheap, never blocks on a viewer ---------------------------------

    def write(self, annotated: Annotated) -> None:
        frame = annotated.frame
        with self._lock:
            latest = self._latest
            self._latest = _Latest(latest.seq + 1, annotated.image, tuple(annotated.labels), frame.index,
                                   annotated.speed)
            self.frames += 1
            self._dropped = frame.dropped  # stamped by the pipeline: live frames replaced before the engine took them
        if self.viewers and not self._closing:
            try:
                self._loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop has stopped
                pass

    def status(self) -> Status:
        """The run as the page sees it (the JSON of ``/status``)."""
        with self._lock:
            latest = self._latest
            frames, dropped = self.frames, self._dropped
        speed = latest.speed
        return {
            "frame": latest.index,
            "frames": frames,
            "labels": [{"name": x.name, "score": round(float(x.score), 6), "explained": bool(x.explained),
                        "index": int(x.index)} for x in latest.labels],
            "fps": 0.0 if speed is None else round(speed.fps, 2),
            "engine_ms": None if speed is None else round(speed.engine_ms, 2),
            "latency_ms": None if speed is None else round(speed.latency_ms, 2),
            "dropped": dropped,
            "source": self.source,
            "viewers": self.viewers,
            "max_viewers": self.max_viewers,
            "running": not self._closing,
            "bad_requests": self.bad_requests,
            "controls": self._controls_status(),
        }

    def _controls_status(self) -> ControlsStatus | None:
        controls = self.controls
        if controls is None or not self.allow_controls:
            return None
        limits = controls.limits
        return {"settings": controls.settings.record(), "method": controls.applied.method,
                "methods": list(limits.methods), "colormaps": list(COLORMAPS), "max_rank": limits.max_rank,
                "panels": limits.panels, "smooth_steps": list(SMOOTH_STEPS) if limits.smooth else [],
                "error": controls.error}

    def close(self) -> None:
        """Stop the server: open streams end, then the listening socket closes."""
        if self._closed:
            return
        self._closed = True
        if self.bad_requests:
            log.info(f"the {option('serve')} server answered %d bad requests (not HTTP, or too long) with 400",
                     self.bad_requests)
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10 * CLOSE_GRACE_S + 10)
        except Exception as exc:  # noqa: BLE001 - closing must not hide the run's result
            log.warning(f"the {option('serve')} server did not stop cleanly: %s", exc)
        finally:
            self._stop_loop()

    # -- the server's side (its own event loop) ---------------------------------------------------------------

    async def _start(self, host: str, port: int) -> tuple[str, int]:
        app = web.Application(middlewares=[_only_known_paths])
        app.router.add_get("/", self._page)
        app.router.add_get(STREAM_PATH, self._stream, allow_head=False)
        app.router.add_get(STATUS_PATH, self._status)
        app.router.add_post(CONTROL_PATH, self._control)
        self._frame_ready = asyncio.Event()
        self._encode_lock = asyncio.Lock()
        # handler_cancellation: a viewer that leaves frees its slot at once, even between frames
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=CLOSE_GRACE_S,
                                     logger=_RequestLog(self))
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        bound = self._runner.addresses[0]
        return str(bound[0]), int(bound[1])

    def _wake(self) -> None:
        """A new frame: wake every viewer waiting for one."""
        self._frame_ready.set()
        self._frame_ready = asyncio.Event()

    async def _page(self, _request: web.Request) -> web.Response:
        page = PAGE.replace(TOKEN_SLOT, f'content="{self.token if self.allow_controls else ""}"', 1)
        return web.Response(text=page, content_type="text/html", charset="utf-8", headers=_page_headers())

    async def _control(self, request: web.Request) -> web.Response:
        """POST /control: JSON of view settings (:mod:`livecam.controls`), from this server's own page only (its
        token, in a header another site's script cannot send without this server's leave); each value checked."""
        if not self.allow_controls:
            raise web.HTTPForbidden(text="this run's page only watches (--serve-controls off)\n")
        if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, ""), self.token) or not _same_site(request,
                                                                                                      self.host):
            raise web.HTTPForbidden(text="a missing or wrong token: change the view from this run's own page\n")
        controls = self.controls
        if controls is None:
            raise web.HTTPServiceUnavailable(text="the model is still loading; try again in a moment\n",
                                             headers={"Retry-After": "1"})
        if request.content_length is None or request.content_length > MAX_CONTROL_BYTES:
            raise web.HTTPBadRequest(text=f"send the settings as JSON of at most {MAX_CONTROL_BYTES} bytes\n")
        try:
            changes = json.loads(await request.read())
        except ValueError:
            raise web.HTTPBadRequest(text='the body is not JSON; send an object such as {"colormap": "turbo"}\n') \
                from None
        try:
            settings = controls.change(changes)
        except LivecamError as exc:
            flag = exc.render(lambda name: "--" + name.replace("_", "-"))  # settings named as the command line does
            raise web.HTTPBadRequest(text=_one_line(flag, 300) + "\n") from None
        return web.Response(text=json.dumps({"settings": settings.record()}), content_type="application/json",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    async def _status(self, _request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.status()), content_type="application/json",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    async def _next_jpeg(self, after: int) -> tuple[int, int | None, bytes] | None:
        """The JPEG of the latest frame newer than ``after`` (waiting for one); None when the server closes."""
        while True:
            if self._closing:
                return None
            if self._latest.seq > after:
                break
            await self._frame_ready.wait()
        async with self._encode_lock:  # one encode per frame, shared by all viewers
            if self._jpeg is None or self._jpeg[0] != self._latest.seq:
                latest = self._latest
                assert latest.image is not None  # seq > 0: a frame came
                jpeg = await asyncio.get_running_loop().run_in_executor(None, self._encode, latest.image)
                self._jpeg = (latest.seq, latest.index, jpeg)
                self.encoded += 1
            return self._jpeg

    def _encode(self, image: np.ndarray) -> bytes:
        """One frame as a JPEG (in the loop's executor: off the loop, and off the pipeline's threads)."""
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a frame as JPEG")
        return buffer.tobytes()

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if self._closing:
            raise web.HTTPServiceUnavailable(text="the run has ended\n")
        if self.viewers >= self.max_viewers:
            raise web.HTTPServiceUnavailable(
                text=f"{plural(self.viewers, 'viewer')} {'is' if self.viewers == 1 else 'are'} watching, the most "
                     "this run allows; close another viewer, or restart livecam with a larger --max-viewers\n",
                headers={"Retry-After": "5"})
        self.viewers += 1
        task = asyncio.current_task()
        assert task is not None  # a handler runs in a task
        self._streams[task] = request.transport
        try:
            response = web.StreamResponse(headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
            _small_buffers(request)
            await response.prepare(request)
            seq = 0
            while (got := await self._next_jpeg(seq)) is not None:
                seq, index, jpeg = got
                head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                        f"X-Frame-Index: {index}\r\n\r\n").encode()
                await response.write(head + jpeg + b"\r\n")
                await request.writer.drain()  # wait until the kernel took it all: the next frame is then the latest
            await response.write(f"--{BOUNDARY}--\r\n".encode())
            await response.write_eof()
            return response
        except ConnectionError:  # the viewer left
            return response
        finally:
            self.viewers -= 1
            self._streams.pop(task, None)

    async def _shutdown(self) -> None:
        self._closing = True
        self._frame_ready.set()
        streams = dict(self._streams)
        if streams:
            _, stalled = await asyncio.wait(streams, timeout=CLOSE_GRACE_S)
            for task in stalled:  # a viewer that stopped reading: cut its connection (close() would wait for it)
                transport = streams[task]
                if transport is not None:
                    transport.abort()
                task.cancel()
            if stalled:
                await asyncio.wait(stalled, timeout=CLOSE_GRACE_S)
        await self._runner.cleanup()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


class _RequestLog(logging.LoggerAdapter[logging.Logger]):
    """The log of aiohttp's request handler (its ``logger``, in place of ``aiohttp.server``), in livecam's words.

    A request aiohttp could not parse (it answered 400) is counted in the sink's
    ``bad_requests`` and said in one debug line: never a traceback, whoever
    sends it. An error of the server's own (a handler that raised: a bug) is one
    warning line the first time and debug lines after, each with its traceback
    at debug level. aiohttp's other lines pass on as they are.
    """

    def __init__(self, sink: ServeSink) -> None:
        super().__init__(log, {})
        self._sink = sink
        self._warned = False

    def log(self, level: int, msg: object, *args: object, exc_info: _ExcInfo = None, stack_info: bool = False,
            stacklevel: int = 1, extra: Mapping[str, object] | None = None, **kwargs: object) -> None:
        exc = _exception_of(exc_info)
        if isinstance(exc, HttpProcessingError):
            self._sink.bad_requests += 1
            super().log(logging.DEBUG, f"{option('serve')} answered 400 to a bad request from %s: %s",
                        _client(args), _one_line(exc.message))
            return
        if level >= logging.ERROR:
            if not self._warned:
                self._warned = True
                super().log(logging.WARNING, f"the {option('serve')} server failed a request from %s: %s",
                            _client(args), "no exception" if exc is None else _one_line(f"{type(exc).__name__}: {exc}"))
            level = logging.DEBUG
        super().log(level, msg, *args, exc_info=exc_info, stack_info=stack_info, stacklevel=stacklevel, extra=extra,
                    **kwargs)


def _exception_of(exc_info: _ExcInfo) -> BaseException | None:
    """The exception a logging call's ``exc_info`` names (an exception, a sys.exc_info() tuple, or True)."""
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return exc_info[1]
    return sys.exc_info()[1] if exc_info else None


def _client(args: tuple[object, ...]) -> str:
    """aiohttp's error lines pass the client's address as their one argument."""
    return _one_line(args[0]) if len(args) == 1 and args[0] else "a client"


def _one_line(text: object, limit: int = 200) -> str:
    """What a client sent, safe for a terminal: one line, no control characters, at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    return safe if len(safe) <= limit else safe[:limit - 3] + "..."


def _small_buffers(request: web.Request) -> None:
    """Keep at most about one frame in this viewer's buffers, so that a paused viewer resumes near the present."""
    transport = request.transport
    if transport is None:
        return
    transport.set_write_buffer_limits(high=0)  # drain() waits until every byte went to the kernel
    sock = transport.get_extra_info("socket")
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)  # Linux and macOS: little unsent data in the kernel, while
    if sock is not None and option is not None:  # the send buffer still grows with the network's round trip
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, NOT_SENT_LOW)
        except OSError:
            pass


def _same_site(request: web.Request, bound: str) -> bool:
    """Is the request from this server's own page? Its Origin (when sent) is this server, and a server on a
    loopback address is asked for by a loopback name (another name there is a DNS rebinding)."""
    host = (request.url.host or "").strip("[]")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return False
    return bound not in LOOPBACK or host in LOOPBACK


@web.middleware
async def _only_known_paths(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The three routes by their exact bytes: no normalized '..', no encoded dots, no trailing parts."""
    if request.raw_path.split("?", 1)[0] not in ROUTES:
        raise web.HTTPNotFound()
    return await handler(request)


def _read_page() -> str:
    """The page, its style and its script, as the package ships them (``serve_page.html``, beside this module)."""
    return resources.files("livecam.sinks").joinpath(PAGE_FILE).read_text(encoding="utf-8")


def _inline(page: str, tag: str) -> str:
    """The text inside the page's one ``<tag>...</tag>``: what its hash in the policy must match, byte for byte."""
    start = page.index(f"<{tag}>") + len(tag) + 2
    return page[start:page.index(f"</{tag}>", start)]


PAGE = _read_page()
PAGE_STYLE = _inline(PAGE, "style")
PAGE_SCRIPT = _inline(PAGE, "script")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _page_headers() -> dict[str, str]:
    """The page runs its own inline style and script (by hash) and talks only to this server."""
    policy = (f"default-src 'none'; img-src 'self'; connect-src 'self'; style-src {_csp_hash(PAGE_STYLE)}; "
              f"script-src {_csp_hash(PAGE_SCRIPT)}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return {"Content-Security-Policy": policy, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
