"""What the policy node reports about its chunks (no ROS): per-chunk status, counters,
and the health its diagnostics show. The node only turns these into messages."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from dp_ros.runtime.loop import StepResult

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
WARN_STATES = ("waiting", "over_budget", "discarded", "late")  # transient; anything else that is not published: ERROR


@dataclass
class Counters:
    chunks: int = 0
    over_budget: int = 0
    late: int = 0
    refused: int = 0
    errors: int = 0
    dropped_actions: int = 0
    rejected_msgs: int = 0
    speed_limited: int = 0
    limit_clamped: int = 0


class ChunkLog:
    def __init__(self):
        self._lock = threading.Lock()
        self.counters = Counters()
        self.last: StepResult | None = None
        self.last_reject = ""

    def reject(self, reason: str) -> None:
        with self._lock:
            self.counters.rejected_msgs += 1
            self.last_reject = reason

    def record(self, r: StepResult) -> dict:
        """Count one result; its status line (the node's ~/status, JSON)."""
        c = self.counters
        with self._lock:
            self.last = r
            if r.state == "published":
                c.chunks += 1
                c.dropped_actions += r.chunk.dropped
                c.speed_limited += r.report.speed_limited
                c.limit_clamped += r.report.limit_clamped
            elif r.state == "over_budget":
                c.over_budget += 1
            elif r.state == "late":
                c.late += 1
            elif r.state == "error":
                c.errors += 1
            elif r.state != "disabled":
                c.refused += 1
        return {
            "state": r.state,
            "reasons": r.reasons,
            "t_obs": r.t_obs,
            "t_start": r.t_start,
            "t_end": r.t_end,
            "t_published": r.t_published,
            "t_switch": r.t_switch,
            "t_planned": r.t_planned,
            "guided": r.guided,
            "prep_ms": round(r.prep_s * 1e3, 3),
            "inference_ms": round(r.inference_s * 1e3, 3),
            "points": 0 if r.chunk is None or r.state != "published" else int(len(r.chunk.times)),
            "dropped": 0 if r.chunk is None else int(r.chunk.dropped),
            "speed_limited": 0 if r.report is None else r.report.speed_limited,
            "points_changed": 0 if r.report is None else r.report.points_changed,
            "limit_clamped": 0 if r.report is None else r.report.limit_clamped,
        }

    def health(self, enabled: bool) -> tuple[int, str, dict]:
        """(level, message, counter values) for diagnostics."""
        with self._lock:
            c, last, reject = Counters(**vars(self.counters)), self.last, self.last_reject
        if not enabled:
            level, message = OK, "disabled"
        elif last is None:
            level, message = OK, "enabled, waiting for the first chunk"
        elif last.state == "published":
            level, message = OK, "publishing"
        else:
            level = WARN if last.state in WARN_STATES else ERROR
            message = f"{last.state}: {'; '.join(last.reasons)}"
        return level, message, {
            "chunks_published": c.chunks,
            "chunks_over_budget": c.over_budget,
            "chunks_late": c.late,
            "chunks_refused": c.refused,
            "chunks_failed": c.errors,
            "actions_dropped_late": c.dropped_actions,
            "values_speed_limited": c.speed_limited,
            "values_limit_clamped": c.limit_clamped,
            "messages_rejected": c.rejected_msgs,
            "last_rejection": reject,
            "stale_streams": ",".join(last.stale) if last else "",
            "last_inference_ms": f"{last.inference_s * 1e3:.1f}" if last else "",
        }
