"""Simulated time for nodes in one process: real time, or lockstep.

Scripts that drive the simulation (the evaluation, the scripted expert) take one of
these clocks and only ever ``sleep``, ask ``now`` and ``call`` services through it:

- ``RealTime``: the executor spins in a background thread; sleeping is wall-clock
  sleeping (what ``sim.launch.py`` gives on a real machine).
- ``Lockstep``: nothing runs on its own. ``sleep(s)`` advances the simulator
  instant by instant (the simulator's ``lockstep_step``, 10 ms); at each
  instant the simulator publishes ``/clock``, every node's clock is seen to follow,
  the streams due are published, and every message published in this process is
  delivered and handled before the next instant. The policy node's inference worker
  is handed each instant (``runtime.worker_clock``) and time does not pass the moment
  its chunk is due until it has been published. Results depend on simulated time
  only, not on how busy the CPU is.

Delivery is checked by counting: every publisher of the nodes in this process counts
what it publishes, every subscription what it has handled, and an instant is done when
each subscription has handled as many messages as were published on its topic here.
So lockstep needs every participant in this process (``dp_ros sim eval``,
``dp_ros sim record``, the tests); separate processes under ``ros2 launch`` run in
real time.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict

from dp_ros.sim.scene import TIMESTEP


class LockstepError(RuntimeError):
    """A participant did not finish an instant within the wall-clock timeout."""


def node_options(lockstep: bool) -> dict:
    """Node options in lockstep: no parameter services. Every executor wait looks at every
    service of every node, and the waits are most of what an instant costs; nothing
    outside the process can reach a lockstep run's parameters anyway (``--set`` does it)."""
    return {"start_parameter_services": False} if lockstep else {}


def _drop_qos_event_handlers(node) -> None:
    """Remove the default QoS event handlers of the node's publishers and subscriptions.

    rclpy gives every publisher and subscription handlers that log incompatible QoS or
    types: two waitables each, which every executor wait visits (40 of the 60 entities an
    evaluation waits on). In lockstep the discovery wait has already seen every publisher
    matched with every subscription on its topic, so they have nothing left to report.
    """
    for entity in (*node.publishers, *node.subscriptions):
        for handler in entity.event_handlers:
            node.remove_waitable(handler)
            handler.destroy()
        entity.event_handlers = []  # destroy_publisher/_subscription would remove them again


def start_clock(nodes, sim, lockstep: bool) -> "Lockstep | RealTime":
    """One executor for ``nodes`` (the simulator ``sim`` among them), driven in lockstep
    or spinning in real time; ``close()`` stops it."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    for n in nodes:
        executor.add_node(n)
    return Lockstep(executor, nodes, sim) if lockstep else RealTime(executor)


class RealTime:
    """Wall-clock time; the executor spins in a background thread."""

    lockstep = False

    def __init__(self, executor):
        import threading

        self._executor = executor
        threading.Thread(target=executor.spin, daemon=True).start()
        time.sleep(0.5)  # discovery: the nodes find each other

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0))

    def call(self, client, request, timeout: float = 10.0):
        from dp_ros.nodes.common import call_service

        return call_service(client, request, timeout)

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=2.0)


class Lockstep:
    """Lockstep time for ``nodes`` (all in this process), owned by the simulator ``sim``."""

    lockstep = True

    def __init__(self, executor, nodes, sim, timeout: float = 60.0):
        self._executor = executor
        self._nodes = list(nodes)
        self._sim = sim
        self.timeout = timeout  # wall seconds one instant may take (an inference on a slow CPU)
        self.instant = sim.instant
        self._published: dict[str, int] = defaultdict(int)
        self._subs: list[tuple[str, list[int]]] = []  # (topic, [handled]) per subscription
        self._limit = math.inf  # how far time may advance before a worker's chunk is due
        self._workers = [n.worker_clock for n in self._nodes if getattr(n, "worker_clock", None) is not None]
        self._sim_clocked = [n for n in self._nodes if n is not sim and n.get_parameter("use_sim_time").value]
        self._count()
        self._wait_for_discovery()
        for node in self._nodes:
            _drop_qos_event_handlers(node)
        for w in self._workers:
            w.step()
        t_ns = int(round(sim.publish_clock() * 1e9))  # every clock set before the first message
        self._drain(lambda: self._clocks_at(t_ns))
        self._step(self.instant)

    # ---- counting ----

    def _count(self) -> None:
        for node in self._nodes:
            for pub in node.publishers:
                self._wrap_publisher(pub)
            for sub in node.subscriptions:
                handled = [0]
                self._subs.append((sub.topic_name, handled))
                sub.callback = self._counted(sub.callback, handled)

    def _wrap_publisher(self, pub) -> None:
        publish, topic = pub.publish, pub.topic_name

        def counted(msg):
            self._published[topic] += 1
            return publish(msg)

        pub.publish = counted

    @staticmethod
    def _counted(callback, handled):
        def counted(*args):
            handled[0] += 1
            return callback(*args)

        return counted

    def _delivered(self) -> bool:
        return all(handled[0] >= self._published[topic] for topic, handled in self._subs)

    def _wait_for_discovery(self) -> None:
        """Every publisher here matched with every subscription here on its topic."""
        wanted: dict[str, int] = defaultdict(int)
        for topic, _ in self._subs:
            wanted[topic] += 1
        pubs = [p for n in self._nodes for p in n.publishers if wanted[p.topic_name]]
        end = time.monotonic() + 10.0
        while not all(p.get_subscription_count() >= wanted[p.topic_name] for p in pubs):
            if time.monotonic() > end:
                missing = sorted({p.topic_name for p in pubs if p.get_subscription_count() < wanted[p.topic_name]})
                raise LockstepError(f"lockstep: subscriptions not matched after 10 s on {missing}")
            if not self._spin():
                time.sleep(0.01)

    # ---- spinning ----

    def _spin(self) -> bool:
        """Run one ready callback, without waiting; whether one ran. (Always the same
        arguments: the executor then hands out every callback one wait found ready
        before it waits again, and waiting is what costs.)"""
        from rclpy.executors import TimeoutException

        try:
            handler, _entity, _node = self._executor.wait_for_ready_callbacks(timeout_sec=0.0)
        except TimeoutException:
            return False
        handler()
        handler.result()  # a callback's exception surfaces here
        return True

    def _clocks_at(self, t_ns: int) -> bool:
        return all(n.get_clock().now().nanoseconds >= t_ns for n in self._sim_clocked)

    def _drain(self, until=lambda: True, idle: bool = True) -> None:
        """Handle everything published so far (and ``until()``), within the timeout; with
        ``idle``, also whatever else is ready (timers, service responses)."""
        end = time.monotonic() + self.timeout
        while True:
            if not idle and self._delivered() and until():
                return
            if self._spin():
                continue
            if self._delivered() and until():
                return
            if time.monotonic() > end:
                late = sorted({topic for topic, h in self._subs if h[0] < self._published[topic]})
                raise LockstepError(f"lockstep: not done within {self.timeout:g} s: "
                                    f"{f'messages on {late}' if late else 'a service call or the clocks'}")
            time.sleep(0.0001)  # a message on its way

    def _step(self, seconds: float) -> None:
        """One instant: physics, then the streams due (stamped now) reach everyone, then
        /clock moves everyone's clock (their timers fire, having seen those messages),
        then the workers take their turn."""
        self._sim.advance(seconds)
        self._sim.publish_due()
        self._drain(idle=False)
        now = self._sim.publish_clock()
        t_ns = int(round(now * 1e9))
        self._drain(lambda: self._clocks_at(t_ns))
        for w in self._workers:
            w.turn(now)
        self._settle_workers()

    def _settle_workers(self) -> None:
        """Wait until every worker is done with the present instant (idle, or busy with a
        chunk due later), then handle what they published on the way; sets the time limit.
        While a worker computes, the executor is left alone: nothing it does needs it."""
        now = self._sim.time()
        end = time.monotonic() + self.timeout
        published = sum(self._published.values())
        while True:
            limits = [w.settled(now) for w in self._workers]
            if all(x is not None for x in limits):
                total = sum(self._published.values())
                if total == published and self._delivered():
                    self._limit = min([math.inf, *limits])
                    return
                self._drain()  # what they published; then look again
                published = total
                continue
            if time.monotonic() > end:
                raise LockstepError(f"lockstep: the policy's worker did not finish the instant at {now:.3f} s "
                                    f"within {self.timeout:g} s")
            for w, x in zip(self._workers, limits):
                if x is None:
                    w.wait_settled(now, 0.05)

    # ---- the clock interface ----

    def now(self) -> float:
        return self._sim.time()

    def sleep(self, seconds: float) -> None:
        """Advance simulated time by ``seconds`` (rounded up to whole instants)."""
        end = self._sim.time() + seconds - 1e-9
        while self._sim.time() < end:
            step = self.instant
            now = self._sim.time()
            if self._limit < now + step - 1e-9:  # stop at the moment a chunk is due
                step = max(self._limit - now, TIMESTEP)
            self._step(step)

    def call(self, client, request, timeout: float = 10.0):
        """A service call at the present instant (time does not pass while it runs)."""
        if not client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f"service {client.srv_name} is not available")
        future = client.call_async(request)
        self._drain(future.done)
        self._settle_workers()  # an enable or a reset makes the worker look at this instant again
        return future.result()

    def close(self) -> None:
        for w in self._workers:
            w.release()
        self._executor.shutdown(timeout_sec=2.0)
