"""The pure core: numpy only, no ROS and no torch imports."""
