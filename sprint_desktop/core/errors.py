"""Errors that cross the engine boundary, each with a message a user can act on."""

from __future__ import annotations


class SprintError(Exception):
    """Base class of every error the app reports to a user."""


class InvalidRequestError(SprintError, ValueError):
    """A request that cannot be generated as asked (steps, size, prompt, guidance...)."""


class ModelLoadError(SprintError):
    """A model folder that is missing, incomplete, corrupt or in a format we refuse to load."""


class NoModelInstalledError(ModelLoadError):
    """No model was given and no default model is installed."""


class GenerationCancelled(SprintError):
    """The request was cancelled between two steps."""
