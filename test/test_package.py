"""The package metadata that ROS tools depend on: package.xml, setup.py, setup.cfg."""
import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

import dp_ros

REPO = Path(__file__).resolve().parents[1]

EXEC_DEPENDS = {
    'rclpy', 'builtin_interfaces', 'std_msgs', 'std_srvs', 'sensor_msgs',
    'trajectory_msgs', 'diagnostic_msgs', 'cv_bridge', 'ament_index_python',
    'python3-numpy', 'python3-opencv', 'python3-yaml',
}
TEST_DEPENDS = {'python3-pytest', 'python3-pytest-timeout'}


@pytest.fixture(scope='module')
def package_xml():
    return ElementTree.parse(REPO / 'package.xml').getroot()


def setup_py_version():
    """The version setup.py hands to setuptools."""
    result = subprocess.run(
        [sys.executable, 'setup.py', '--version'], cwd=REPO,
        capture_output=True, text=True, timeout=120, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_package_xml_is_format_3_ament_python(package_xml):
    assert package_xml.tag == 'package'
    assert package_xml.get('format') == '3'
    assert package_xml.findtext('name') == 'dp_ros'
    assert package_xml.findtext('export/build_type') == 'ament_python'


def test_maintainer_has_valid_email(package_xml):
    # colcon silently treats the package as plain Python when this is malformed.
    maintainer = package_xml.find('maintainer')
    assert maintainer is not None and maintainer.text.strip()
    assert re.fullmatch(r'[^@\s]+@[^@\s]+\.[a-z]+', maintainer.get('email', ''))


def test_versions_agree(package_xml):
    xml_version = package_xml.findtext('version')
    assert re.fullmatch(r'\d+\.\d+\.\d+', xml_version)
    assert setup_py_version() == xml_version
    assert dp_ros.__version__ == xml_version


def test_dependencies_declared(package_xml):
    exec_depends = {e.text for e in package_xml.findall('exec_depend')}
    test_depends = {e.text for e in package_xml.findall('test_depend')}
    assert EXEC_DEPENDS <= exec_depends, f'missing exec_depend: {EXEC_DEPENDS - exec_depends}'
    assert TEST_DEPENDS <= test_depends, f'missing test_depend: {TEST_DEPENDS - test_depends}'


def test_scripts_install_where_ros_looks():
    # launch_ros finds executables in lib/<package>, not bin/.
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO / 'setup.cfg')
    assert config.get('develop', 'script_dir') == '$base/lib/dp_ros'
    assert config.get('install', 'install_scripts') == '$base/lib/dp_ros'


def test_ament_index_marker_exists():
    assert (REPO / 'resource' / 'dp_ros').is_file()


def test_installed_package_is_in_the_ament_index():
    # Fails (rather than skips) when the package was not built and sourced: run it
    # through scripts/test.sh, which sources env.sh.
    packages = pytest.importorskip('ament_index_python.packages')
    if not os.environ.get('AMENT_PREFIX_PATH'):
        pytest.fail('AMENT_PREFIX_PATH is not set: run scripts/setup.sh and source env.sh '
                    '(scripts/test.sh does), or source install/setup.bash')
    share = Path(packages.get_package_share_directory('dp_ros'))
    assert (share / 'package.xml').is_file()


@pytest.mark.skipif(shutil.which('colcon') is None, reason='colcon is not on PATH')
def test_colcon_sees_an_ament_python_package():
    result = subprocess.run(
        ['colcon', 'list', '--base-paths', str(REPO)],
        capture_output=True, text=True, timeout=120, check=True)
    lines = [line.split('\t') for line in result.stdout.splitlines()]
    assert any(fields[0] == 'dp_ros' and fields[-1] == '(ros.ament_python)'
               for fields in lines), result.stdout
