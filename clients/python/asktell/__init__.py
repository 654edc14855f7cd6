"""asktell: the Python client of the asktell ask/tell optimization service."""

from asktell._models import Decision, HypervolumeHistory, HypervolumePoint
from asktell.aio import AsyncClient, AsyncStudy, AsyncTrial
from asktell.client import Client, Study, Trial
from asktell.current import current_trial
from asktell.errors import (
    AlreadyExistsError,
    AsktellError,
    AskTimeoutError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
    SobolFallbackWarning,
    TrialStopped,
)

__version__ = "0.1.0"
__all__ = [
    "AlreadyExistsError",
    "AskTimeoutError",
    "AsktellError",
    "AsyncClient",
    "AsyncStudy",
    "AsyncTrial",
    "AuthenticationError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "Decision",
    "HypervolumeHistory",
    "HypervolumePoint",
    "InvalidArgumentError",
    "NotFoundError",
    "ServerError",
    "ServiceUnavailableError",
    "SobolFallbackWarning",
    "Study",
    "Trial",
    "TrialStopped",
    "current_trial",
]
