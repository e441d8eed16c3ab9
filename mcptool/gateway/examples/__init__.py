"""Example gateway configs (``plant``, ``many-meters``), shipped as package data so that
``mcptool gateway example NAME`` prints them from any install; read by
:mod:`mcptool.gateway.example_configs`. Tests check these same files, so there is one copy."""
