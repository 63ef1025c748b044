"""``~/segment``: expressions or a command answered on the camera's latest frame or on an image in the request.

The request is answered from a thread of its own and the executor only awaits it: a call that waits seconds for the
model never holds back the command, camera or timer callbacks (a stop during a call takes effect at once).

A command is read as the ``command`` topic reads it (the node's reader, lenient alike): a command that names targets
is answered on them, and parts it could not use are named in ``message`` ("partly used: ..."); a stop, noise or a
command naming nothing usable is not answered (``success`` false, ``message`` says why).
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable

from rclpy.task import Future

from ..engine.commands import TARGET, ParsedCommand
from .buffers import Frame
from .conversions import image_to_rgb, stamp_seconds
from .engine_setup import EngineHandle, release_gpu_memory
from .params import NodeSettings

if TYPE_CHECKING:
    from rclpy.node import Node

    from .camera_stream import CameraStream


class SegmentService:
    def __init__(self, node: "Node", callback_group, engine: EngineHandle, streams: Callable[[], list["CameraStream"]],
                 settings: Callable[[], NodeSettings | None], parse: Callable[[str], ParsedCommand]) -> None:
        """``node`` serves the service (and its executor resumes the call); ``engine`` answers it on a frame of
        ``streams()[0]`` or the request's image; ``settings()`` is None while the node is not active; ``parse`` reads
        a command."""
        from ..srv import Segment

        self.node, self.engine, self.streams, self.settings, self.parse = node, engine, streams, settings, parse
        self.finished = 0.0  # time.monotonic() at the end of the last call (the camera callbacks waited meanwhile)
        self.service = node.create_service(Segment, "~/segment", self._on_request, callback_group=callback_group)

    def destroy(self) -> None:
        self.node.destroy_service(self.service)

    async def _on_request(self, request, response):
        done: Future = Future()

        def answer() -> None:
            try:
                done.set_result(self._answer(request, response))
            except BaseException as exc:  # _answer answers errors itself; anything else is still the caller's reply
                done.set_exception(exc)
            finally:
                self.finished = time.monotonic()
                executor = self.node.executor
                if executor is not None:
                    executor.wake()  # the executor resumes this coroutine on its next turn

        threading.Thread(target=answer, name="mllmseg_segment_service", daemon=True).start()
        return await done

    def _expressions(self, request) -> tuple[str, list[str], str]:
        """(the text answered, its expressions, what could not be used) of a request; ValueError when nothing can."""
        expressions = [e for e in request.expressions if e.strip()]
        if expressions:
            return "; ".join(expressions), expressions, ""
        parsed = self.parse(request.command)  # ValueError for an over-long command, by its length alone
        if parsed.intent != TARGET:
            raise ValueError(f"{request.command!r} names nothing to segment: {parsed.reason or parsed.intent}")
        return request.command, list(parsed.expressions), "; ".join(parsed.problems)

    def _answer(self, request, response):
        response.success = False
        settings = self.settings()
        if settings is None or self.engine.segmenter is None:
            response.message = "node is not active"
            return response
        try:
            text, expressions, unused = self._expressions(request)
            stream = self.streams()[0]
            if request.use_latest_image:
                frame = stream.latest
                if frame is None:
                    response.message = f"no image received yet on {self.node.resolve_topic_name(stream.image_topic)}"
                    return response
            else:
                frame = Frame(rgb=image_to_rgb(request.image), header=request.image.header, received=time.monotonic(),
                              stamp=stamp_seconds(request.image.header))
            with self.engine.lock:
                segmenter = self.engine.segmenter
                if segmenter is None:  # cleaned up meanwhile
                    response.message = "node is not active"
                    return response
                results = segmenter.segment(frame.rgb, expressions)
                timings = dict(segmenter.last_timings)
            response.result = stream.results_array(frame, text, results, settings, timings)
            response.success = True
            response.message = f"partly used: {unused}" if unused else "ok"
        except Exception as exc:  # bad request or model failure: answer, do not crash
            release_gpu_memory(after=exc)
            response.message = str(exc)
        return response
