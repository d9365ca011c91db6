"""livecam --serve: a real server fed by real runs, plain HTTP clients, and a real headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from livecam.cli import main
from livecam.controls import Controls
from livecam.pipeline import run
from livecam.engines.runtime.engine import RuntimeEngine
from livecam.sinks.serve import ServeSink, parse_address
from livecam.sources import open_source
from livecam.types import Frame
from tests.conftest import (PACED_FPS, FlakyCamera, InstantEngine, cat_on_background, chromium_page, make_video,
                            read_video, small_clip, wait_until)

FRAMES = 120
HANG_GUARD_S = 60.0  # waits end here only when something hangs; nothing is timed


@pytest.fixture(scope="module")
def engine(graph: Path) -> RuntimeEngine:
    return RuntimeEngine(graph, "cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, chelsea_bgr: np.ndarray) -> Path:
    """120 frames, 480x360: the cat crossing a grey background and back."""
    cat = cv2.resize(chelsea_bgr, (240, 160), interpolation=cv2.INTER_AREA)
    steps = [*range(60), *range(59, -1, -1)]
    frames = [cat_on_background(cat, (360, 480), (4 * s, 20 + 2 * s)) for s in steps]
    return make_video(tmp_path_factory.mktemp("clip") / "crossing.mp4", frames, fps=24.0)


@pytest.fixture(scope="module")
def clip_frames(clip: Path) -> list[np.ndarray]:
    return read_video(clip)[0]


def wait_for(condition: Callable[[], object], what: str) -> object:
    """Poll until ``condition()`` is true (a guard against hangs, not a time limit on the code)."""
    end = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def paced(images: list[np.ndarray], finish: threading.Event, fps: float = 30.0) -> Iterator[Frame]:
    """The decoded clip over and over, at about ``fps``, until ``finish`` is set: a run that lasts as long as a
    test needs."""
    for i in itertools.count():
        if finish.is_set():
            return
        time.sleep(1.0 / fps)
        yield Frame(images[i % len(images)], i, i / fps)


@contextlib.contextmanager
def served_run(engine: RuntimeEngine, images: list[np.ndarray], controls: Controls | None = None, sinks=(),
               on_frame=None, **options) -> Iterator[ServeSink]:
    """A ServeSink fed by pipeline.run on the real engine, in a thread, until the test is done (with ``controls``:
    the page may change the view)."""
    sink = ServeSink("127.0.0.1", 0, source="the crossing clip", controls=controls is not None, **options)
    sink.controls = controls
    finish = threading.Event()
    outcome: dict[str, object] = {}

    def go() -> None:
        try:
            outcome["report"] = run(paced(images, finish), engine, [sink, *sinks], controls=controls,
                                    on_frame=on_frame)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        finish.set()
        thread.join(HANG_GUARD_S)
        sink.close()
    assert not thread.is_alive(), "the run did not end"
    assert "error" not in outcome, outcome.get("error")


def request(sink: ServeSink, path: str, method: str = "GET") -> tuple[int, http.client.HTTPResponse, bytes]:
    """One request with the path sent exactly as given (no client-side normalization)."""
    conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=HANG_GUARD_S)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response, response.read()
    finally:
        conn.close()


def status(sink: ServeSink) -> dict:
    code, _, body = request(sink, "/status")
    assert code == 200
    return json.loads(body)


async def next_part(reader: aiohttp.MultipartReader) -> tuple[int, np.ndarray] | None:
    """The next JPEG of an MJPEG stream, decoded with OpenCV, and its frame index; None at the stream's end."""
    part = await reader.next()
    if part is None:
        return None
    assert part.headers["Content-Type"] == "image/jpeg"
    data = await part.read()
    image = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "a part is not a JPEG"
    return int(part.headers["X-Frame-Index"]), image


def test_parse_address() -> None:
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0") == ("127.0.0.1", 0)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("localhost:9000") == ("localhost", 9000)
    assert parse_address("[::1]:8080") == ("::1", 8080)
    for bad in ("", "abc", "70000", "host:", ":8080", "::1:8080", "1.2.3.4:port", "80 80", "-1"):
        with pytest.raises(Exception, match="is not \\[HOST:\\]PORT"):
            parse_address(bad)


def test_page_status_and_stream_of_a_real_run(engine: RuntimeEngine, clip_frames: list[np.ndarray]) -> None:
    names = set(engine.info.class_names)
    with served_run(engine, clip_frames) as sink:
        assert sink.url == f"http://127.0.0.1:{sink.port}/" and sink.port > 0
        code, response, body = request(sink, "/")
        assert code == 200 and response.getheader("Content-Type").startswith("text/html")
        assert b'<img id="video" src="stream.mjpg"' in body
        assert "script-src 'sha256-" in response.getheader("Content-Security-Policy")

        state = wait_for(lambda: (s := status(sink))["frame"] is not None and s["fps"] > 0 and s, "frames")
        assert state["labels"] and state["labels"][0]["name"] in names and state["labels"][0]["explained"]
        assert all(0.0 <= x["score"] <= 1.0 and x["name"] in names for x in state["labels"])
        assert state["latency_ms"] > 0 and state["dropped"] == 0
        assert state["source"] == "the crossing clip" and state["running"] is True

        async def watch() -> list[tuple[int, np.ndarray]]:
            async with aiohttp.ClientSession() as session, session.get(sink.url + "stream.mjpg") as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
                reader = aiohttp.MultipartReader.from_response(response)
                parts = [await next_part(reader)]
                viewers = (await (await session.get(sink.url + "status")).json())["viewers"]
                assert viewers == 1
                while len(parts) < 6 or parts[-1][0] - parts[0][0] < 12:
                    parts.append(await next_part(reader))
                return parts

        parts = asyncio.run(watch())
        indices = [index for index, _ in parts]
        assert indices == sorted(set(indices)), "each part is a newer frame"
        first, last = parts[0][1], parts[-1][1]
        assert first.shape == last.shape == clip_frames[0].shape
        assert np.abs(first.astype(int) - last.astype(int)).mean() > 2.0, "the picture changes over time"
        assert sink.encoded <= sink.frames


OTHER_PATHS = ["/etc/passwd", "/../x", "/%2e%2e/", "/%2E%2E/status", "/static/../../pyproject.toml",
               "/stream.mjpg/extra", "//", "/./status", "/status/", "/index.html", "/favicon.ico",
               "/..%2fpyproject.toml", "/%2fetc%2fpasswd", "/../../../../etc/passwd"]


def test_only_three_paths_exist(engine: RuntimeEngine, clip_frames: list[np.ndarray]) -> None:
    with served_run(engine, clip_frames[:4]) as sink:
        for path in OTHER_PATHS:
            code, _, body = request(sink, path)
            assert code == 404, (path, code, body[:80])
            assert b"root:" not in body and b"[project]" not in body
        assert request(sink, "/status?cache=no")[0] == 200  # a query string is not a path


def test_other_methods_are_405(engine: RuntimeEngine, clip_frames: list[np.ndarray]) -> None:
    with served_run(engine, clip_frames[:4]) as sink:
        for path in ("/", "/status", "/stream.mjpg"):
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                assert request(sink, path, method)[0] == 405, (method, path)
        assert request(sink, "/stream.mjpg", "HEAD")[0] == 405  # a HEAD would hold a viewer's slot for nothing
        assert request(sink, "/status", "HEAD")[0] == 200


# What is not HTTP, as anyone who can reach the port may send it: each is answered 400, none is a traceback.
BAD_REQUESTS = [
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # a 10,000-character URL
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n",  # a 70 kB header
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n",  # TLS on the HTTP port
    b"\x00\xff\x1b[2J garbage\r\n\r\n",  # a garbage request line, with a terminal escape in it
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",  # an HTTP version that does not exist
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",  # a header name with a space
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n",  # 200 headers
    b"POST /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",  # a chunk that is not
    b"GET /\x00\xff HTTP/1.1\r\nHost: x\r\n\r\n",  # bytes no URL holds
]
GOOD_REQUEST = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"


def statuses_for(port: int, data: bytes, after_good: bool = False) -> list[int]:
    """Send ``data`` raw on a new connection (after one good request on it when ``after_good``), read until the
    server closes it, and return the statuses of the responses."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S) as conn:
        if after_good:  # the same garbage, on a connection that was HTTP until then: aiohttp logs it otherwise
            conn.sendall(GOOD_REQUEST)
            received = conn.recv(1 << 16)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it answered before reading it all
            conn.sendall(data)
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(1 << 16):
                received += chunk
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", received)]


def send_bad_requests(port: int, count: int) -> None:
    """``count`` bad requests, the kinds in turn, every third after a good request; each must get its 400."""
    for i in range(count):
        data, after_good = BAD_REQUESTS[i % len(BAD_REQUESTS)], i % 3 == 2
        expected = [200, 400] if after_good else [400]
        assert statuses_for(port, data, after_good) == expected, (i, data[:60])


def test_bad_requests_are_counted_and_said_in_one_line_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="livecam"), ServeSink("127.0.0.1", 0) as sink:
        send_bad_requests(sink.port, 2 * len(BAD_REQUESTS))
        state = status(sink)
    assert state["bad_requests"] == 2 * len(BAD_REQUESTS)
    lines = [r for r in caplog.records if "bad request" in r.getMessage()]
    assert len(lines) == 2 * len(BAD_REQUESTS) + 1  # one each, and the count as the server closes
    assert all(r.levelno == logging.DEBUG and r.exc_info is None for r in lines[:-1])
    assert all("\n" not in r.getMessage() and "\x1b" not in r.getMessage() for r in lines)
    assert lines[-1].levelno == logging.INFO and f"answered {2 * len(BAD_REQUESTS)} bad requests" in lines[-1].message
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING or r.name.startswith("aiohttp")]


def test_a_failing_handler_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    """A bug in the server (a handler that raises): 500, said once in one line; the tracebacks only at debug."""
    with caplog.at_level(logging.DEBUG, logger="livecam"), ServeSink("127.0.0.1", 0) as sink:
        def broken() -> dict:
            raise ValueError("a broken status")

        sink.status = broken
        codes = [request(sink, "/status")[0] for _ in range(3)]
    assert codes == [500, 500, 500]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is None, warnings
    assert "failed a request from 127.0.0.1: ValueError: a broken status" in warnings[0].getMessage()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 3 and all(r.levelno == logging.DEBUG for r in tracebacks)


@pytest.mark.slow
def test_a_flood_of_bad_requests_leaves_stderr_quiet_and_the_run_going(graph: Path) -> None:
    """A real run on a live camera, 100 bad requests: each answered 400, the run still serves, stderr stays quiet."""
    camera = FlakyCamera()
    proc = _livecam("--model", str(graph), "--source", camera.url, "--no-show", "--serve", "127.0.0.1:0",
                    "--reconnect", "0", "-v")
    try:
        url, lines = _served_url(proc)
        port = int(url.rsplit(":", 1)[1].strip("/"))
        send_bad_requests(port, 100)

        async def still_serving() -> tuple[dict, tuple[int, np.ndarray] | None]:
            async with aiohttp.ClientSession() as session:
                end = time.monotonic() + HANG_GUARD_S
                while not (state := await (await session.get(url + "status")).json())["frames"]:
                    assert time.monotonic() < end, "no frames"
                    await asyncio.sleep(0.05)
                async with session.get(url + "stream.mjpg") as response:
                    return state, await next_part(aiohttp.MultipartReader.from_response(response))

        state, part = asyncio.run(still_serving())
        assert state["running"] and state["bad_requests"] == 100
        assert part is not None and part[1].shape == (96, 192, 3)  # the camera's frames
        camera.close()  # the camera goes away; with --reconnect 0 the run ends as a file's would
        stdout, stderr = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        camera.close()
        proc.kill()
        proc.wait()
    stderr = "".join(lines) + stderr
    assert proc.returncode == 0, stderr
    assert re.search(r"livecam: \d+ frames? in ", stdout), stdout  # one frame, on a slow machine
    assert "Traceback" not in stderr and "aiohttp" not in stderr and "Error handling" not in stderr, stderr
    assert all(line.startswith("livecam: ") for line in stderr.splitlines()), stderr
    assert "livecam: the --serve server answered 100 bad requests" in stderr, stderr


def test_the_fifth_viewer_is_turned_away_until_one_leaves(engine: RuntimeEngine,
                                                          clip_frames: list[np.ndarray]) -> None:
    with served_run(engine, clip_frames) as sink:
        async def crowd() -> None:
            async with aiohttp.ClientSession() as session:
                async def viewers() -> int:
                    return (await (await session.get(sink.url + "status")).json())["viewers"]

                streams = []
                for _ in range(4):
                    response = await session.get(sink.url + "stream.mjpg")
                    assert response.status == 200
                    assert await next_part(aiohttp.MultipartReader.from_response(response)) is not None
                    streams.append(response)
                assert await viewers() == 4
                fifth = await session.get(sink.url + "stream.mjpg")
                assert fifth.status == 503 and "--max-viewers" in await fifth.text()
                streams.pop().close()  # one leaves
                end = time.monotonic() + HANG_GUARD_S
                while await viewers() != 3:
                    assert time.monotonic() < end, "the slot was never freed"
                    await asyncio.sleep(0.02)
                again = await session.get(sink.url + "stream.mjpg")
                assert again.status == 200
                assert await next_part(aiohttp.MultipartReader.from_response(again)) is not None
                assert await viewers() == 4
                for response in [*streams, again]:
                    response.close()

        asyncio.run(crowd())


def test_a_stalled_viewer_does_not_hold_up_the_run(engine: RuntimeEngine, clip: Path) -> None:
    """A viewer that connects and never reads: the run still processes every frame, and close cuts it."""
    sink = ServeSink("127.0.0.1", 0, source="the crossing clip")
    stalled = socket.create_connection(("127.0.0.1", sink.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    stalled.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{sink.port}\r\n\r\n".encode())
    try:
        wait_for(lambda: sink.viewers == 1, "the stalled viewer to connect")
        outcome: dict[str, object] = {}
        with open_source(str(clip)) as source:
            thread = threading.Thread(target=lambda: outcome.update(report=run(source, engine, [sink])), daemon=True)
            thread.start()
            thread.join(HANG_GUARD_S * 2)
        assert not thread.is_alive(), "the run waited for a viewer that does not read"
        assert outcome["report"].frames == FRAMES and sink.frames == FRAMES
        assert sink.viewers == 1  # still connected, still not reading
        assert sink.encoded < FRAMES // 2, "the viewer was not stalled: it took most frames"
        sink.close()
        # the stream ends: what was in the buffers, then the end of the connection
        stalled.settimeout(HANG_GUARD_S)
        received = b""
        while chunk := stalled.recv(1 << 16):
            received += chunk
        assert received.startswith(b"HTTP/1.1 200")
        assert 1 <= received.count(b"Content-Type: image/jpeg") <= sink.encoded
    finally:
        stalled.close()
        sink.close()


def test_a_paused_viewer_resumes_at_a_recent_frame_not_a_backlog(engine: RuntimeEngine,
                                                                 clip_frames: list[np.ndarray]) -> None:
    with served_run(engine, clip_frames) as sink:
        async def pause_and_resume() -> tuple[int, int, list[int]]:
            async with aiohttp.ClientSession(read_bufsize=1 << 14) as session, \
                    session.get(sink.url + "stream.mjpg") as response:
                reader = aiohttp.MultipartReader.from_response(response)
                first, _ = await next_part(reader)
                # pause: stop reading while the run explains 90 more frames
                end = time.monotonic() + HANG_GUARD_S
                while (now := (await (await session.get(sink.url + "status")).json())["frame"]) < first + 90:
                    assert time.monotonic() < end, "the run stalled"
                    await asyncio.sleep(0.05)
                seen = []
                while not seen or seen[-1] < now:
                    index, _ = await next_part(reader)
                    seen.append(index)
                return first, now, seen

        first, now, seen = asyncio.run(pause_and_resume())
    # a queue would hand over the 90 frames in between one by one; the latest-frame stream skips them, and only
    # what sat in the sockets' buffers during the pause (mostly the client's receive buffer, about 16 of these
    # small JPEGs on loopback) comes before the present
    assert len(seen) <= 30, (first, now, seen)
    assert max(b - a for a, b in zip([first, *seen], seen, strict=False)) >= 30, seen


def test_dropped_frames_of_a_live_source_are_counted(engine: RuntimeEngine, clip_frames: list[np.ndarray]) -> None:
    """Live sources: the page counts the frames the pipeline had no time for, as the pipeline does."""
    frames = [Frame(image, i, i / 30) for i, image in enumerate(clip_frames[:60])]
    processed: list[int] = []
    with ServeSink("127.0.0.1", 0) as sink:
        report = run(frames, engine, [sink], live=True, on_frame=lambda a: processed.append(a.frame.index))
        state = status(sink)
    assert report.dropped > 0 and state["frames"] == report.frames == len(processed)
    assert state["dropped"] == report.dropped == processed[-1] + 1 - len(processed)  # the gaps in the indices
    assert state["frame"] == processed[-1] == 59


def test_status_gives_the_figures_drawn_on_the_latest_frame(engine: RuntimeEngine,
                                                            clip_frames: list[np.ndarray]) -> None:
    frames = [Frame(image, i, i / 24) for i, image in enumerate(clip_frames[:12])]
    seen: list = []
    with ServeSink("127.0.0.1", 0) as sink:
        run(frames[:1], engine, [sink])
        first = status(sink)  # one frame: no figures yet, none drawn
        run(frames, engine, [sink], on_frame=seen.append)
        state = status(sink)
    assert (first["fps"], first["engine_ms"], first["latency_ms"]) == (0.0, None, None)
    speed = seen[-1].speed
    assert state["frame"] == seen[-1].frame.index == 11
    assert (state["fps"], state["engine_ms"], state["latency_ms"], state["dropped"]) == \
        (round(speed.fps, 2), round(speed.engine_ms, 2), round(speed.latency_ms, 2), speed.dropped)
    assert speed.fps > 0 and 0 < speed.engine_ms <= speed.latency_ms


def test_a_served_file_plays_at_its_own_rate(tmp_path: Path) -> None:
    clip = small_clip(tmp_path / "two_seconds.mp4", 2.0)
    with open_source(str(clip)) as src, ServeSink("127.0.0.1", 0) as sink:
        started = time.perf_counter()
        report = run(src, InstantEngine(), [sink], pace=True)
        wall = time.perf_counter() - started
        state = status(sink)
    assert report.frames == state["frames"] == 48
    assert 0.9 * 2.0 <= wall <= 1.1 * 2.0, wall
    assert state["fps"] == pytest.approx(PACED_FPS, rel=0.1)  # what the readout says, the clip's own rate


def test_the_page_in_a_real_browser(engine: RuntimeEngine, clip_frames: list[np.ndarray]) -> None:
    names = set(engine.info.class_names)
    with served_run(engine, clip_frames) as sink, chromium_page() as page:
        page.goto(sink.url, wait_until="domcontentloaded")  # an endless <img> never fires 'load'
        wait_until(page, "document.getElementById('video').naturalWidth > 0")
        wait_until(page, "document.querySelectorAll('#bars .bar .name').length > 0")  # the page's script runs
        wait_until(page, "document.getElementById('frame').textContent !== '-'")
        size = page.evaluate("[document.getElementById('video').naturalWidth, "
                             "document.getElementById('video').naturalHeight]")
        assert size == [clip_frames[0].shape[1], clip_frames[0].shape[0]]
        video = page.locator("#video")
        shots = []
        for _ in range(2):
            start = status(sink)["frame"]
            wait_for(lambda start=start: status(sink)["frame"] >= start + 15, "15 more frames")
            shots.append(cv2.imdecode(np.frombuffer(video.screenshot(), np.uint8), cv2.IMREAD_COLOR))
        assert shots[0].shape == shots[1].shape
        assert np.abs(shots[0].astype(int) - shots[1].astype(int)).mean() > 2.0, "the picture did not change"
        bars = page.locator("#bars .bar .name").all_inner_texts()
        assert bars and all(name in names for name in bars), bars
        assert int(page.inner_text("#frame")) > 0
        assert page.inner_text("#viewers") == f"1 of {sink.max_viewers}" and status(sink)["viewers"] == 1
        # the speed is drawn on the video (the frame's readout): the page does not repeat it
        assert page.locator("#fps, #latency, #dropped").count() == 0
        assert not re.search(r"\d\s*(FPS|ms)", page.inner_text("#side")), page.inner_text("#side")


# -- live controls: POST /control ----------------------------------------------------------------------------------


@pytest.fixture
def torch_engine(lite0):
    from livecam.engines.pytorch.engine import TorchEngine

    with TorchEngine(lite0, renderer="opencv") as engine:
        yield engine


def control(sink: ServeSink, body: object, token: str | None, headers: dict | None = None) -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **({} if token is None else {"X-Livecam-Token": token}),
            **(headers or {})}
    conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=HANG_GUARD_S)
    try:
        conn.request("POST", "/control", body=data, headers=sent)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def page_token(sink: ServeSink) -> str:
    code, _, body = request(sink, "/")
    assert code == 200
    return re.search(r'<meta name="livecam-token" content="([^"]*)">', body.decode())[1]


def test_control_needs_the_pages_token_and_checks_every_value(torch_engine, clip_frames: list[np.ndarray],
                                                              tmp_path: Path) -> None:
    from livecam.sinks.records import JsonlLog

    controls = Controls(torch_engine)
    methods: dict[int, str] = {}
    log = tmp_path / "run.jsonl"
    with JsonlLog(log) as records, served_run(torch_engine, clip_frames, controls=controls, sinks=[records],
                                              on_frame=lambda out: methods.update({out.frame.index:
                                                                                   out.explanation.method})) as sink:
        token = page_token(sink)
        assert len(token) >= 32
        before = status(sink)["controls"]
        assert before["settings"] == {"method": "gradcam", "rank": 0, "panels": False, "alpha": 0.5,
                                      "colormap": "jet", "smooth_s": 0.0, "paused": False}
        assert before["method"] == "gradcam" and "eigencam" in before["methods"] and before["max_rank"] == 3
        good = {"method": "eigencam", "colormap": "turbo"}
        refused = [
            (control(sink, good, None), 403, "a missing or wrong token"),
            (control(sink, good, token[:-1] + ("A" if token[-1] != "A" else "B")), 403, "wrong token"),
            (control(sink, good, token, {"Origin": "http://evil.example"}), 403, "wrong token"),  # another site
            (control(sink, good, token, {"Host": "rebound.example:80"}), 403, "wrong token"),  # DNS rebinding
            (control(sink, {"colour": "turbo"}, token), 400, "unknown setting 'colour'"),
            (control(sink, {"alpha": 2}, token), 400, "alpha must lie between 0 and 1, not 2"),
            (control(sink, {"method": "scorecam"}, token), 400, "unknown method 'scorecam'"),
            (control(sink, {"rank": 7}, token), 400, "rank must lie between 0 (each frame's top class) and 3"),
            (control(sink, {**good, "alpha": -1}, token), 400, "alpha must lie between"),  # all or nothing
            (control(sink, b"{not json", token), 400, "the body is not JSON"),
            (control(sink, ["method"], token), 400, "must be an object"),
        ]
        for (code, text), expected, fragment in refused:
            assert code == expected and fragment in text and text.count("\n") == 1, (code, text)
        assert status(sink)["controls"]["settings"] == before["settings"]  # nothing changed
        seen = status(sink)["frames"]
        wait_for(lambda: status(sink)["frames"] > seen + 3, "frames after the refused requests")  # the run goes on

        code, text = control(sink, good, token)
        assert code == 200 and json.loads(text)["settings"]["method"] == "eigencam"
        state = wait_for(lambda: (s := status(sink))["controls"]["method"] == "eigencam" and s, "the new method")
        assert state["controls"]["settings"] == {**before["settings"], **good}
        changed = wait_for(lambda: next((line["frame"] for line in map(json.loads, log.read_text().splitlines()[1:])
                                         if "settings" in line), None), "the log's new settings")
    assert {method for index, method in methods.items() if index < changed} == {"gradcam"}
    assert {method for index, method in methods.items() if index >= changed} == {"eigencam"}
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["settings"] for line in lines if "settings" in line][1] == {
        "method": "eigencam", "rank": 0, "panels": False, "alpha": 0.5, "colormap": "turbo", "smooth_s": 0.0}


def test_serve_controls_off_serves_a_page_that_only_watches(engine: RuntimeEngine,
                                                            clip_frames: list[np.ndarray]) -> None:
    with served_run(engine, clip_frames[:4]) as sink:
        assert page_token(sink) == "" and status(sink)["controls"] is None
        code, text = control(sink, {"colormap": "turbo"}, sink.token)  # even with the server's own token
        assert code == 403 and "only watches (--serve-controls off)" in text


def test_clicking_the_pages_buttons_changes_the_run(torch_engine, clip_frames: list[np.ndarray]) -> None:
    controls = Controls(torch_engine)
    with served_run(torch_engine, clip_frames, controls=controls) as sink, chromium_page() as page:
        page.goto(sink.url, wait_until="domcontentloaded")
        wait_until(page, "!document.getElementById('controls').hidden")
        wait_until(page, "document.querySelectorAll('#c-method button').length > 0")
        page.click("#c-method button[data-value='layercam']")
        wait_for(lambda: status(sink)["controls"]["method"] == "layercam", "the method clicked")
        page.click("#c-colormap button[data-value='viridis']")
        page.click("#c-more")
        wait_for(lambda: status(sink)["controls"]["settings"]["alpha"] == 0.6, "the opacity clicked")
        wait_until(page, "document.querySelector('#c-method button.on').dataset.value === 'layercam'")
        names = wait_until(page, "document.querySelector('#c-rank button[data-value=\"2\"]').textContent")
        page.click("#c-rank button[data-value='2']")
        wait_for(lambda: status(sink)["controls"]["settings"]["rank"] == 2, "the class clicked")
        page.click("#c-paused")
        wait_for(lambda: status(sink)["controls"]["settings"]["paused"], "the pause clicked")
        assert page.inner_text("#control-error") == ""
        settings = status(sink)["controls"]["settings"]
        # the button sends the opposite of what the page last heard from /status: wait until it has heard
        wait_until(page, "document.getElementById('c-paused').textContent === 'resume'")
        page.click("#c-paused")  # resumed, so that the run sees its source end
        wait_for(lambda: not status(sink)["controls"]["settings"]["paused"], "the resume clicked")
    assert settings == {"method": "layercam", "rank": 2, "panels": False, "alpha": 0.6, "colormap": "viridis",
                        "smooth_s": 0.0, "paused": True}
    assert names.startswith("2. ")
    assert controls.applied.method == "layercam" and torch_engine.annotator.colormap == "viridis"


# -- the command line ----------------------------------------------------------------------------------------------


def _one_line_error(result, fragment: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("livecam: error: ") and fragment in lines[0], result.stderr
    return lines[0]


@pytest.mark.parametrize("value", ["abc", "99999", "host:", "::1:8080", "127.0.0.1:port"])
def test_a_bad_serve_value_is_one_line(value: str, clip: Path) -> None:
    _one_line_error(CliRunner().invoke(main, ["--source", str(clip), "--no-show", "--serve", value]),
                    "is not [HOST:]PORT")


def test_max_viewers_needs_serve(clip: Path) -> None:
    _one_line_error(CliRunner().invoke(main, ["--source", str(clip), "--no-show", "--max-viewers", "2"]),
                    "--max-viewers is for --serve")


def test_a_port_in_use_fails_before_the_model_loads(clip: Path, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        missing_model = tmp_path / "not-made-yet.onnx"  # loading it would fail with another message
        result = CliRunner().invoke(main, ["--source", str(clip), "--no-show", "--model", str(missing_model),
                                           "--serve", f"127.0.0.1:{port}"])
    line = _one_line_error(result, "the port is in use")
    assert f"http://127.0.0.1:{port}/" in line


def _livecam(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "livecam", *args], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _served_url(proc: subprocess.Popen) -> tuple[str, list[str]]:
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if match := re.match(r"livecam: serving (http://127\.0\.0\.1:(\d+)/)$", line.strip()):
            assert int(match[2]) > 0
            return match[1], lines
    proc.wait()
    raise AssertionError("livecam did not print the URL: " + "".join(lines))


@pytest.mark.slow
def test_the_cli_serves_while_it_records(graph: Path, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    proc = _livecam("--model", str(graph), "--source", str(clip), "--no-show", "--serve", "127.0.0.1:0",
                    "--output", str(out))
    try:
        url, lines = _served_url(proc)  # printed before the model loads: the page is up while it does

        async def watch() -> list[tuple[int, np.ndarray]]:
            async with aiohttp.ClientSession() as session:
                page = await session.get(url)
                assert page.status == 200 and page.content_type == "text/html"
                async with session.get(url + "stream.mjpg") as response:
                    reader = aiohttp.MultipartReader.from_response(response)
                    parts = []
                    while (part := await next_part(reader)) is not None:  # until the run ends and the stream with it
                        parts.append(part)
                    return parts

        parts = asyncio.run(watch())
        stdout, stderr = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, "".join(lines) + stderr
    assert len(parts) >= 2 and parts[-1][0] > parts[0][0]
    assert np.abs(parts[0][1].astype(int) - parts[-1][1].astype(int)).mean() > 2.0
    assert len(read_video(out)[0]) == FRAMES and f"wrote {out}" in stdout
    assert "nothing is shown" not in "".join(lines) + stderr


@pytest.mark.slow
def test_the_cli_with_only_serve_does_not_warn(graph: Path, clip: Path) -> None:
    proc = _livecam("--model", str(graph), "--source", str(clip), "--no-show", "--serve", "0", "--max-frames", "5")
    try:
        _, lines = _served_url(proc)
        stdout, stderr = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, "".join(lines) + stderr
    assert "5 frames" in stdout
    assert "nothing is shown" not in "".join(lines) + stderr


def test_help_explains_the_options() -> None:
    result = CliRunner().invoke(main, ["--help"])
    text = " ".join(result.output.split())
    assert result.exit_code == 0
    assert "--serve [HOST:]PORT Watch the run in a browser" in text and "port 0 picks a free port" in text
    assert "--max-viewers N With --serve: how many browsers may watch" in text
