"""``~/segment`` reads a command as the ``command`` topic does (the node's reader, with its word lists): usable targets
are answered and the parts it could not use are named; a stop, noise or nothing usable is not answered."""
from __future__ import annotations

from rclpy.parameter import Parameter

from ros_harness import rgb_msg


def _call(ros, command: str):
    from mllmseg_ros.srv import Segment

    client = ros.driver().node.create_client(Segment, "/mllmseg_node/segment")
    assert client.wait_for_service(timeout_sec=10)
    return client.call(Segment.Request(command=command, use_latest_image=False, image=rgb_msg()), timeout_sec=30)


def test_the_service_uses_what_the_topic_would_and_names_the_rest(ros, make_node, seg_checkpoint):
    node = make_node(seg_checkpoint, threshold=0.0)
    text = "pick up the red cup; follow it"
    topic_reading = node.parse_command(text)
    response = _call(ros, text)
    assert response.success, response.message
    assert [s.expression for s in response.result.segmentations] == list(topic_reading.expressions) == ["the red cup"]
    assert response.message.startswith("partly used: ") and "follow it" in response.message
    assert response.result.command == text


def test_stops_and_noise_are_not_answered(ros, make_node, seg_checkpoint):
    make_node(seg_checkpoint, threshold=0.0)
    for text, why in (("Stop.", "a stop"), ("Thanks for watching!", "speech-to-text prints"), ("   ", "clears")):
        response = _call(ros, text)
        assert not response.success and "names nothing to segment" in response.message and why in response.message


def test_the_services_command_words_follow_the_nodes_parameters(ros, make_node, seg_checkpoint):
    """One reader, owned by the node: a changed stop_phrases list applies to the service at once."""
    node = make_node(seg_checkpoint, threshold=0.0)
    response = _call(ros, "halt")  # a built-in stop phrase
    assert not response.success and "a stop" in response.message
    assert node.set_parameters([Parameter("stop_phrases", value=["stop"])])[0].successful
    response = _call(ros, "halt")  # no longer a stop phrase: a target
    assert response.success, response.message
    assert [s.expression for s in response.result.segmentations] == ["halt"]
