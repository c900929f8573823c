"""Conversions from and to other tools' formats: LeRobot and the reference Diffusion
Policy code (docs/interop.md). Imported by the CLI only, so their optional
dependencies never reach the policy node."""
