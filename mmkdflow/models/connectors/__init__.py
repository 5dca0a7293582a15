"""The connector protocol, the simple connectors and DiffKD's (FM-KT's
connectors live in :mod:`mmkdflow.models.fmkt`)."""
from .adapters import ChannelProjection, ConvAdapter, IdentityConnector
from .base import BaseConnector, ConnectorOutput, IdentityAtInference
from .diffkd_connector import DiffKDConnector

__all__ = ['BaseConnector', 'ConnectorOutput', 'ChannelProjection',
           'ConvAdapter', 'IdentityAtInference', 'IdentityConnector',
           'DiffKDConnector']
