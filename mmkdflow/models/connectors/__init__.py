from .adapters import ConvAdapter, IdentityConnector
from .base import BaseConnector, ConnectorOutput

__all__ = ['BaseConnector', 'ConnectorOutput', 'ConvAdapter',
           'IdentityConnector']
