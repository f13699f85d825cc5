"""Benchmarks of telnyx_msg against raw aiohttp (run ``python -m benchmarks.run``).

See ``benchmarks/README.md`` and ``docs/performance.md``.
"""
