"""The inference worker's clock (runtime.worker_clock): free-running and stepped."""
import math
import threading
import time

from dp_ros.runtime.worker_clock import WorkerClock


def test_free_running_reads_the_clock_and_wakes_early():
    t = [5.0]
    clock = WorkerClock(lambda: t[0])
    assert clock.now() == 5.0
    threading.Timer(0.05, clock.wake).start()
    start = time.monotonic()
    clock.wait(5.0)
    assert time.monotonic() - start < 2.0  # woken, not timed out


def test_stepped_worker_acts_at_handed_instants_and_holds_time_at_its_due_result():
    clock = WorkerClock(lambda: 999.0)  # the node's clock is not what a stepped worker sees
    clock.step()
    clock.turn(1.0)
    assert clock.now() == 1.0 and clock.settled(1.0) is None  # it has not looked yet
    clock.idle(1.0)
    assert clock.settled(1.0) == math.inf
    clock.wake()  # enabled: it must look at this instant again
    assert clock.settled(1.0) is None
    clock.wait(0.0)  # the worker takes the wake-up
    clock.busy(1.3)  # a chunk started at 1.0 with 0.3 s of simulated latency
    assert clock.settled(1.0) == 1.3  # time may run up to 1.3, not past it
    done = threading.Event()

    def worker():
        clock.wait_until(1.3, threading.Event())
        done.set()

    threading.Thread(target=worker, daemon=True).start()
    clock.turn(1.2)
    assert not done.wait(0.1)
    clock.turn(1.3)
    assert done.wait(2.0)
    assert clock.settled(1.3) is None  # busy and due now: the driver waits for the result
    clock.idle(1.3)
    assert clock.settled(1.3) == math.inf


def test_an_idle_stepped_worker_sleeps_until_the_next_instant():
    clock = WorkerClock(lambda: 0.0)
    clock.step()
    clock.turn(2.0)
    clock.idle(2.0)
    woke = threading.Event()

    def worker():
        clock.wait(10.0)
        woke.set()

    threading.Thread(target=worker, daemon=True).start()
    assert not woke.wait(0.1)
    clock.turn(2.004)
    assert woke.wait(2.0)


def test_a_woken_worker_is_not_settled_until_it_says_so_again():
    """Disabled, the worker is idle "until never"; ~/enable wakes it. Once it has taken the
    wake-up it is about to start a chunk at this instant: a driver that still read the old
    "idle until never" would move time on under it (the chunk would start an instant late
    on some runs and not on others)."""
    clock = WorkerClock(lambda: 0.0)
    clock.step()
    clock.turn(2.0)
    clock.idle(2.0, math.inf)
    assert clock.settled(2.0) == math.inf and clock.settled(3.0) == math.inf
    clock.wake()
    clock.wait(0.0)
    assert clock.settled(2.0) is None  # looking again: no longer idle
    clock.idle(2.0, 2.5)
    assert clock.settled(2.0) == math.inf
