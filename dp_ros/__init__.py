"""dp_ros: Diffusion Policy for robot arms on ROS 2.

The version lives in package.xml; this copy must match it (test/test_package.py checks).
"""
__version__ = '0.1.0'
