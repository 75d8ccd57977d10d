"""redis-jwt's benchmark: ``nox -s bench`` (see docs/benchmarks.md).

The entry points are scripts (``python bench/run.py``, ``python bench/http.py``);
this file makes ``bench`` a package so that they share ``bench._common`` and so
that ``bench/http.py`` never shadows the standard library's ``http``.
"""
