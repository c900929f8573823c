"""The simulated arm: controller emulation, scene, task and node (MuJoCo)."""
