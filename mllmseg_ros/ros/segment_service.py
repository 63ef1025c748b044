"""``~/segment``: expressions or a command answered on the camera's latest frame or on an image in the request.

The request is answered from a thread of its own and the executor only awaits it: a call that waits seconds for the
model never holds back the command, camera or timer callbacks (a stop during a call takes effect at once).
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from rclpy.task import Future

from .buffers import Frame
from .conversions import image_to_rgb, stamp_seconds
from .engine_setup import release_gpu_memory
from .publishing import build_array

if TYPE_CHECKING:
    from .node import MLLMSegNode


class SegmentService:
    def __init__(self, node: "MLLMSegNode", callback_group) -> None:
        from ..srv import Segment

        self.node = node
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

    def _answer(self, request, response):
        node = self.node
        response.success = False
        if not node.is_active or node.segmenter is None:
            response.message = "node is not active"
            return response
        try:
            expressions = [e for e in request.expressions if e.strip()]
            text = "; ".join(expressions) if expressions else request.command
            # The engine refuses an over-long command by its length before parsing it.
            expressions = expressions or node.segmenter.expressions_from_command(request.command)
            stream = node.streams[0]
            if request.use_latest_image:
                frame = stream.latest
                if frame is None:
                    response.message = f"no image received yet on {node.resolve_topic_name(stream.image_topic)}"
                    return response
            else:
                frame = Frame(rgb=image_to_rgb(request.image), header=request.image.header, received=time.monotonic(),
                              stamp=stamp_seconds(request.image.header))
            with node.engine_lock:
                results = node.segmenter.segment(frame.rgb, expressions)
                timings = dict(node.segmenter.last_timings)
            started = time.perf_counter()
            depth, intrinsics, reason = stream.depth_for(frame, node.settings)
            lookup = time.perf_counter() - started
            response.result = build_array(frame, text, results, depth, intrinsics, reason, timings, lookup)
            response.success = True
            response.message = "ok"
        except Exception as exc:  # bad request or model failure: answer, do not crash
            release_gpu_memory(after=exc)
            response.message = str(exc)
        return response
