"""The device profiles shipped with mcptool (``boiler``, ``power_meter``, ...), as package data.

They live inside the package rather than in ``fixtures/`` so that a wheel carries them and
``--profile boiler`` works from any install, not only from a source checkout; tests load
these same files, so there is one copy of each. Loaded by name through
:func:`simulators.modbus.profile.load_profile` with ``importlib.resources``.
"""
