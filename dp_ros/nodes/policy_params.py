"""The policy node's run-time parameters: declared with descriptions and ranges,
validated together (at start-up, where a problem stops the node, and in the on-set
callback, where it rejects the change with the reason), and read at every chunk as
``Tunables``.

Checks that involve more than one parameter, or the node's state:
- joint limits: one value per joint, no NaN, lower <= upper per joint, also after the
  URDF's limits are merged in; every message names the joints;
- execution_latency against the span the published actions cover, the bridge included
  (``core.chunking.latency_problem``);
- seam_mode among the known strategies (``core.seams``);
- num_inference_steps only among the step counts the backend has prepared (a CUDA
  graph captured at start-up), so a change never stalls the control loop.
"""
from __future__ import annotations

import math

import numpy as np

from dp_ros.core.chunking import bridge_length, latency_problem
from dp_ros.core.safety import JointLimits
from dp_ros.core.seams import SEAM_MODES, seam_mode_problem
from dp_ros.nodes.common import describe
from dp_ros.runtime.loop import Tunables

LIMIT_PARAMS = ("joint_lower_limits", "joint_upper_limits")


class PolicyParameters:
    """Declares the tunable parameters on ``node`` and checks every change."""

    def __init__(self, node, cfg, runner):
        self.node = node
        self.cfg = cfg
        self.runner = runner
        self.urdf_limits: dict[str, tuple[float, float, float]] = {}
        self.urdf_error = ""  # why the last robot description was unusable
        declare = node.declare_parameter
        t_max = cfg.max_action_steps
        k_max = cfg.noise.num_train_steps
        declare("action_horizon", cfg.n_action_steps, describe(
            f"T_a, actions executed per chunk, 1..T_p-T_o+1 = {t_max}", lo=1, hi=t_max, integer=True))
        declare("num_inference_steps", cfg.noise.num_inference_steps, describe(
            f"DDIM denoising steps per chunk, 1..K = {k_max}; on graph backends one of prepared_inference_steps",
            lo=1, hi=k_max, integer=True))
        declare("inference_period", 0.0, describe(
            "seconds between chunk starts; 0: early inference, each chunk started so that it takes over by the "
            "running chunk's last executed action (from latency_percentile of recent inference times plus "
            "latency_margin)", lo=0.0, hi=60.0))
        declare("seam_mode", "inpaint", describe(
            f"how a new chunk joins the running one: {', '.join(SEAM_MODES)} (docs/seams.md)"))
        bridge_max = cfg.horizon - cfg.n_obs_steps
        declare("bridge_steps", max(0, bridge_max + 1 - cfg.n_action_steps), describe(
            "predicted actions published behind the action_horizon executed ones, so a late chunk leaves the arm "
            "moving on the old plan (capped at what the prediction has: T_p - T_o + 1 - action_horizon); 0 for "
            "none", lo=0, hi=bridge_max, integer=True))
        declare("latency_percentile", 95.0, describe(
            "early inference: percentile of the last 20 inference times taken as the next one's", lo=50.0, hi=100.0))
        declare("latency_margin", 0.03, describe(
            "early inference: seconds added to that estimate", lo=0.0, hi=1.0))
        declare("inpaint_blend_steps", 4, describe(
            "seam_mode inpaint: actions after the fixed prefix over which the guidance fades from 1 to 0",
            lo=0, hi=cfg.horizon, integer=True))
        declare("ensemble_decay", 0.1, describe(
            "seam_mode ensemble: chunk weights exp(-decay * k), k = 0 for the oldest (ACT's convention)",
            lo=0.0, hi=10.0))
        declare("execution_latency", 0.02, describe(
            "seconds from publishing to the controller acting; actions due before now + this are dropped, and the "
            "controller is taken to switch to the new chunk then", lo=0.0, hi=1.0))
        declare("action_time_offset", float(cfg.action_time_offset), describe(
            "seconds added to every action time (t_obs + i*dt + offset); default: the checkpoint's (0, or 1/fps "
            "for a policy imported from LeRobot)", lo=-1.0, hi=1.0))
        declare("max_obs_age", 0.25, describe(
            "seconds; a stream whose newest message is older makes the observation stale", lo=0.001, hi=10.0))
        declare("max_joint_speed", 1.0, describe(
            "rad/s (m/s for prismatic joints) per joint, on every segment the controller executes, the first "
            "one included", lo=1e-6, hi=100.0))
        declare("tracking_tolerance", 0.1, describe(
            "rad (m); when the measured position is further than this from where the node's last command put "
            "the controller, someone else moved the arm: the next command starts from the measurement",
            lo=1e-4, hi=10.0))
        declare("simulated_latency", 0.0, describe(
            "seconds; publish each chunk no earlier than this long after its inference started, as a slower "
            "computer would (simulation and latency studies; 0 on a real arm)", lo=0.0, hi=5.0))
        declare("noise_seed", -1, describe(
            "seed of the denoiser's initial noise, applied whenever it is set (reproducible rollouts); -1 for "
            "fresh randomness", lo=-1, hi=2 ** 31 - 1, integer=True))
        n = cfg.action_dim
        declare("joint_lower_limits", [-math.inf] * n, describe(
            "lower position limit per joint, in joint_names order; -.inf for none"))
        declare("joint_upper_limits", [math.inf] * n, describe(
            "upper position limit per joint, in joint_names order; .inf for none"))

    def get(self, name: str, staged: dict | None = None):
        if staged and name in staged:
            return staged[name]
        return self.node.get_parameter(name).value

    def limits(self, staged: dict | None = None, urdf: dict | None = None) -> JointLimits:
        """The parameters' limits tightened by the URDF's; ValueError naming the joints."""
        if self.urdf_error:
            raise ValueError(f"/robot_description is unusable: {self.urdf_error}")
        names = tuple(self.cfg.joint_names)
        values = {}
        for name in LIMIT_PARAMS:
            v = [float(x) for x in self.get(name, staged)]
            if len(v) != len(names):
                raise ValueError(f"{name} needs {len(names)} values, one per joint in {list(names)}; got {len(v)}")
            nan = [names[i] for i, x in enumerate(v) if math.isnan(x)]
            if nan:
                raise ValueError(f"{name} is NaN for joints {nan}")
            values[name] = np.array(v)
        lower, upper = values["joint_lower_limits"], values["joint_upper_limits"]
        speed = np.full(len(names), float(self.get("max_joint_speed", staged)))
        urdf = self.urdf_limits if urdf is None else urdf
        try:
            return JointLimits(lower, upper, speed, names).tightened(urdf)
        except ValueError as exc:
            where = " (parameters and the URDF together)" if urdf else ""
            raise ValueError(f"{exc}{where}") from None

    def problem(self, staged: dict | None = None) -> str | None:
        """Why these values (the current ones with ``staged`` applied) cannot run, or None."""
        staged = staged or {}
        try:
            self.limits(staged)
        except ValueError as exc:
            return str(exc)
        mode = seam_mode_problem(str(self.get("seam_mode", staged)))
        if mode:
            return mode
        horizon = int(self.get("action_horizon", staged))
        bridge = bridge_length(int(self.get("bridge_steps", staged)), horizon, self.cfg.n_obs_steps, self.cfg.horizon)
        latency = latency_problem(float(self.get("execution_latency", staged)), horizon, self.cfg.dt,
                                  float(self.get("action_time_offset", staged)), bridge)
        if latency:
            return latency
        return self.runner.unprepared(int(self.get("num_inference_steps", staged)))

    def set_urdf(self, limits: dict[str, tuple[float, float, float]] | None, error: str = "") -> str | None:
        """Take the limits of a new robot description (or the reason it could not be read).
        Returns why the node cannot move with them, or None. Until a usable description
        arrives, ``limits()`` raises that reason: no motion on limits we could not check."""
        self.urdf_limits, self.urdf_error = limits or {}, error
        try:
            self.limits()
        except ValueError as exc:
            return str(exc)
        return None

    def tunables(self) -> Tunables:
        return Tunables(
            n_action_steps=int(self.get("action_horizon")),
            num_inference_steps=int(self.get("num_inference_steps")),
            execution_latency=float(self.get("execution_latency")),
            action_time_offset=float(self.get("action_time_offset")),
            max_obs_age=float(self.get("max_obs_age")),
            limits=self.limits(),
            tracking_tolerance=float(self.get("tracking_tolerance")),
            simulated_latency=float(self.get("simulated_latency")),
            seam_mode=str(self.get("seam_mode")),
            bridge_steps=int(self.get("bridge_steps")),
            inference_period=float(self.get("inference_period")),
            latency_percentile=float(self.get("latency_percentile")),
            latency_margin=float(self.get("latency_margin")),
            inpaint_blend_steps=int(self.get("inpaint_blend_steps")),
            ensemble_decay=float(self.get("ensemble_decay")),
        )
