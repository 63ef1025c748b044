"""Training and evaluation data: synthetic tabletop scenes with referring expressions. Numpy/OpenCV only, no ROS."""
