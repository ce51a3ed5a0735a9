"""`shop_health_serving{service}`: 1 for each health name (`""`, each service, a part such
as `shop.order.v1.OrderService.UserFeed`) the health service reports SERVING, else 0;
every name it knows, read when Prometheus scrapes (a collector, not a gauge kept up to date
on every change: the health servicer stays untouched)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

NAME = "shop_health_serving"


class HealthMetrics(Collector):
    """Reads `statuses` (name → serving) at each scrape, on the admin thread: it must
    return a copy of what the process holds, without blocking."""

    def __init__(self, registry: CollectorRegistry, statuses: Callable[[], Mapping[str, bool]]):
        self._statuses = statuses
        registry.register(self)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(NAME, _HELP, labels=("service",))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(NAME, _HELP, labels=("service",))
        for name, serving in sorted(self._statuses().items()):
            family.add_metric((name,), 1.0 if serving else 0.0)
        yield family


_HELP = "1 when the health service reports SERVING for this name, else 0."
