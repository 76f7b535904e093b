"""Benchmarks behind ``python -m suite bench <target>`` (docs/performance.md): measured, never timed tests.

Each target is a module with a ``run_*_benchmark`` function returning a frozen result that renders to a table and
to JSON; the CLI (:mod:`suite.commands.bench`) only parses flags and prints.
"""

from __future__ import annotations
