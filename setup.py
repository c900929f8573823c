"""Build script for the dp_ros ament_python package.

package.xml is the single source of truth for the version; dp_ros/__init__.py
repeats it and test/test_package.py checks that the two agree.
"""
import os
from glob import glob
from xml.etree import ElementTree

from setuptools import find_packages, setup

PACKAGE_NAME = 'dp_ros'
HERE = os.path.dirname(os.path.abspath(__file__))


def package_xml_version():
    root = ElementTree.parse(os.path.join(HERE, 'package.xml')).getroot()
    return root.findtext('version').strip()


def tree_data_files(directory):
    """(install_dir, [files]) pairs for every file under directory, keeping subdirectories.

    Paths are relative to this file, as setuptools expects.
    """
    pairs = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(HERE, directory)):
        dirnames[:] = sorted(d for d in dirnames if d != '.build')  # a checkpoint's build products stay local
        files = sorted(
            os.path.relpath(os.path.join(dirpath, name), HERE)
            for name in filenames if name != '.gitkeep')
        if files:
            rel_dir = os.path.relpath(dirpath, HERE)
            pairs.append((os.path.join('share', PACKAGE_NAME, rel_dir), files))
    return pairs


def glob_data_files(directory, pattern):
    files = sorted(os.path.relpath(p, HERE) for p in glob(os.path.join(HERE, directory, pattern)))
    return [(os.path.join('share', PACKAGE_NAME, directory), files)] if files else []


setup(
    name=PACKAGE_NAME,
    version=package_xml_version(),
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE_NAME]),
        ('share/' + PACKAGE_NAME, ['package.xml']),
        *glob_data_files('launch', '*.py'),
        *glob_data_files('config', '*.yaml'),
        *glob_data_files('config', '*.xml'),
        *tree_data_files('models'),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='dp_ros maintainers',
    maintainer_email='dp-ros@example.com',
    description='Diffusion Policy for robot arms on ROS 2.',
    license='Apache-2.0',
    # tests_require is gone from setuptools (>= 72 warns 'Unknown distribution option');
    # the test tools are listed in requirements.in and as an extra.
    extras_require={'test': ['pytest', 'pytest-timeout']},
    entry_points={
        'console_scripts': [
            'dp_ros = dp_ros.cli:main',
            'policy_node = dp_ros.nodes.policy_node:main',
            'teleop_recorder = dp_ros.nodes.teleop_recorder:main',
            'sim_arm = dp_ros.sim.sim_node:main',
        ],
    },
)
