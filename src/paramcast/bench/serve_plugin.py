"""``paramcast serve --plugin paramcast.bench.serve_plugin``: registers ``bench-hyper``, the serving
benchmark's method (:class:`paramcast.bench.serve.BenchHyper`), in the server process only."""

from paramcast.bench.serve import BenchHyper
from paramcast.registry import available, register

if "bench-hyper" not in available():
    register("bench-hyper")(BenchHyper)
