"""mllmseg_ros: language-to-mask perception with MLLMSeg.

Rooms (imports point one way): ``ros`` -> ``engine`` -> ``model``. ``model`` and ``engine`` never import ROS.
"""
# rosidl installs the generated ``mllmseg_ros.msg``/``srv`` modules into site-packages while tests import the
# hand-written modules from the source tree; extend_path lets both halves of the package import.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
