"""A running job's state and counters, asked of its runner: what
``results.progress.JobMonitor`` prints on every runner but the DirectRunner.

Beam's PortableRunner (Prism, a portable job server, Flink, Spark) returns a
result that talks to the job service over gRPC: ``GetState`` and
``GetJobMetrics`` are asked directly (with a timeout, from the monitor's
thread), because ``PipelineResult.metrics()`` keeps the first answer for good
and ``PipelineResult.state`` overwrites the state that ``wait_until_finish``
decides on. Any other result (Dataflow, ...) is asked through its public
``state`` and ``metrics()``.
"""

from __future__ import annotations

from typing import Callable

from alm_beam.beam.transforms import METRICS_NAMESPACE
from alm_beam.results.progress import POLL_TIMEOUT_S


def counter_values(metric_results) -> dict:
    """``{name: value}`` of alm_beam's counters in Beam ``MetricResults``, summed
    over steps; the attempted value (live) where the runner has one."""
    from apache_beam.metrics.metric import MetricsFilter

    found = metric_results.query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    values: dict = {}
    for result in found:
        value = result.attempted if result.attempted is not None else result.committed
        if isinstance(value, int):
            name = result.key.metric.name
            values[name] = values.get(name, 0) + value
    return values


def _call(method, request):
    """A job service call with a timeout (a gRPC stub), or without (an
    in-process servicer, whose methods take no timeout)."""
    try:
        return method(request, timeout=POLL_TIMEOUT_S)
    except TypeError:
        return method(request)


def job_poll(result) -> Callable[[], tuple]:
    """``poll()`` -> ``(state name, {counter: value})`` for the job behind ``result``."""
    service = getattr(result, "_job_service", None)
    job_id = getattr(result, "_job_id", None)
    if service is not None and job_id is not None:  # PortableRunner's PipelineResult
        from apache_beam.portability.api import beam_job_api_pb2
        from apache_beam.runners.portability.portable_runner import PortableMetrics

        def poll() -> tuple:
            state = _call(service.GetState, beam_job_api_pb2.GetJobStateRequest(job_id=job_id)).state
            metrics = _call(service.GetJobMetrics, beam_job_api_pb2.GetJobMetricsRequest(job_id=job_id))
            return beam_job_api_pb2.JobState.Enum.Name(state), counter_values(PortableMetrics(metrics))

        return poll

    def public_poll() -> tuple:
        state = str(result.state)
        try:
            counters = counter_values(result.metrics())
        except Exception:  # noqa: BLE001 - a runner without live metrics: state alone
            counters = {}
        return state, counters

    return public_poll
