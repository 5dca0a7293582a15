from .adapters import ConvAdapter, IdentityConnector
from .base import BaseConnector, ConnectorOutput
from .diffkd_connector import DiffKDConnector
from .fmkt_connector import FMKTConnector

__all__ = ['BaseConnector', 'ConnectorOutput', 'ConvAdapter',
           'IdentityConnector', 'DiffKDConnector', 'FMKTConnector']
