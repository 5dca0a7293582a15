"""The connector protocol and the simple connectors (the methods' own are
in :mod:`mmkdflow.models.diffkd` and :mod:`mmkdflow.models.fmkt`)."""
from .adapters import ChannelProjection, ConvAdapter, IdentityConnector
from .base import BaseConnector, ConnectorOutput, IdentityAtInference

__all__ = ['BaseConnector', 'ConnectorOutput', 'ChannelProjection',
           'ConvAdapter', 'IdentityAtInference', 'IdentityConnector']
