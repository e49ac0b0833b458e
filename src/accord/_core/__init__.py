"""The logic of accord without I/O, run by both faces (sync and async).

Nothing here reads or writes a store: these functions take what was read and
return what to write, or the error to raise. The I/O layers above
(:mod:`accord._writepath`, :mod:`accord.session`, :mod:`accord.store`, and
their async sources) call them, so every rule of the write path is written
once. Modules here import only leaves (``records``, ``errors``, ``keys``,
``clock``, ``diff``, ``params``).
"""
