"""ROS 2 node shells: the only modules that import rclpy."""
