"""Demonstration datasets: episodes of camera images, joint positions and actions in a
zarr store (diffusion_policy's replay-buffer layout). No ROS imports."""
from dp_ros.dataset.store import FORMAT_VERSION, DatasetError, EpisodeStore, EpisodeWriter

__all__ = ["FORMAT_VERSION", "DatasetError", "EpisodeStore", "EpisodeWriter"]
