"""Runnable examples (``python examples/NAME.py``), each run by
``tests/test_examples.py``.
"""
