"""The ROS 2 layer: node, parameters, message conversions, QoS. Model maths lives in ``engine``/``model``."""
