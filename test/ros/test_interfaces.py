"""The package's own ROS interfaces (msg/, srv/): built by scripts/build_interfaces.sh (setup.sh) or colcon."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def filled_array():
    from geometry_msgs.msg import Point
    from sensor_msgs.msg import Image, RegionOfInterest
    from std_msgs.msg import Header

    from mllmseg_ros.msg import Segmentation, SegmentationArray

    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 123_456_789
    mask = np.zeros((3, 4), np.uint8)  # 4 wide, 3 high
    mask[1, 1:3] = 255
    segmentation = Segmentation(
        expression="the red cup",
        found=True,
        confidence=0.875,  # exact in float32, so equality after the round trip is exact
        mask=Image(header=header, height=3, width=4, encoding="mono8", is_bigendian=0, step=4, data=mask.tobytes()),
        bbox=RegionOfInterest(x_offset=1, y_offset=1, height=1, width=2, do_rectify=False),
        centroid_px=Point(x=1.5, y=1.0, z=0.0),
        centroid_3d=Point(x=-0.25, y=0.125, z=1.5),
        centroid_3d_valid=True,
        centroid_3d_status="ok",
        depth_samples=2,
        area=2,
        source=Segmentation.SOURCE_TRACKED,
        answer_age_s=2.25,
        track_confidence=0.75,
        track_status="tracking",
    )
    return SegmentationArray(
        header=header,
        command="pick up the red cup",
        segmentations=[segmentation],
        preprocess_ms=1.5,
        inference_ms=120.25,
        postprocess_ms=0.75,
        total_ms=123.5,
    )


def test_segmentation_array_round_trip():
    from rclpy.serialization import deserialize_message, serialize_message

    from mllmseg_ros.msg import SegmentationArray

    sent = filled_array()
    raw = serialize_message(sent)
    got = deserialize_message(raw, SegmentationArray)

    assert got == sent
    # Field by field too: a failing == says nothing about which field differs.
    for name in SegmentationArray.get_fields_and_field_types():
        if name != "segmentations":
            assert getattr(got, name) == getattr(sent, name), name
    assert len(got.segmentations) == 1
    one, expected = got.segmentations[0], sent.segmentations[0]
    for name in type(one).get_fields_and_field_types():
        assert getattr(one, name) == getattr(expected, name), name
    mask = np.frombuffer(one.mask.data, np.uint8).reshape(one.mask.height, one.mask.width)
    assert mask.shape == (3, 4) and int(mask.sum()) == 2 * 255
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (1_700_000_000, 123_456_789)


def test_segment_service_fields():
    from mllmseg_ros.msg import SegmentationArray
    from mllmseg_ros.srv import Segment

    assert Segment.Request.get_fields_and_field_types() == {
        "expressions": "sequence<string>",
        "command": "string",
        "use_latest_image": "boolean",
        "image": "sensor_msgs/Image",
    }
    assert Segment.Response.get_fields_and_field_types() == {
        "success": "boolean",
        "message": "string",
        "result": "mllmseg_ros/SegmentationArray",
    }
    response = Segment.Response(success=True, result=filled_array())
    assert isinstance(response.result, SegmentationArray)
    assert Segment.Request(expressions=["a", "b"]).expressions == ["a", "b"]


def test_interfaces_and_python_modules_import_together():
    """Generated msg/srv (installed) and hand-written modules (source tree or installed) form one package."""
    import mllmseg_ros
    import mllmseg_ros.engine  # noqa: F401
    from mllmseg_ros.msg import Segmentation  # noqa: F401

    assert mllmseg_ros.__version__


def test_package_xml_and_cmake_agree():
    name = ET.parse(ROOT / "package.xml").getroot().findtext("name")
    cmake = (ROOT / "CMakeLists.txt").read_text()
    match = re.search(r"^project\(\s*(\w+)", cmake, re.MULTILINE)
    assert match and match.group(1) == name == "mllmseg_ros"
    # Every interface file is generated: a new .msg missing from rosidl_generate_interfaces would silently not exist.
    for path in sorted((ROOT / "msg").glob("*.msg")) + sorted((ROOT / "srv").glob("*.srv")):
        assert f'"{path.parent.name}/{path.name}"' in cmake, path.name



def test_command_status_round_trip():
    from rclpy.serialization import deserialize_message, serialize_message

    from mllmseg_ros.msg import CommandStatus

    assert (CommandStatus.TARGET, CommandStatus.STOPPED, CommandStatus.REPEAT, CommandStatus.IGNORED,
            CommandStatus.REJECTED) == (1, 2, 3, 4, 5)
    sent = CommandStatus(command="Stop. Pick up the green cup.", outcome=CommandStatus.TARGET, stopped=True,
                         expressions=["the green cup"], target=["the green cup"], target_id=7, reason="",
                         reply="Stopped. Now looking for the green cup.", active=True)
    sent.header.stamp.sec, sent.header.stamp.nanosec = 1_700_000_000, 5
    got = deserialize_message(serialize_message(sent), CommandStatus)
    for name in CommandStatus.get_fields_and_field_types():
        assert getattr(got, name) == getattr(sent, name), name
