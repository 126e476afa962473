"""The corpus application: the ``quals score`` command (reading and writing rows, sharded and resumable runs
across processes) and ``quals merge``, built on the engine (``quals.engine``), which never imports it.
"""
