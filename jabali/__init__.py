"""jabali: the backup subsystem of a web-hosting control panel, built on restic."""

__version__ = "0.1.0"
