"""asktell server: REST API, storage, engines and workers."""

__version__ = "0.1.0"
