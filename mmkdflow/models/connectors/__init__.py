from .adapters import ConvAdapter, IdentityConnector
from .base import BaseConnector, ConnectorOutput
from .diffkd_connector import DiffKDConnector
from .fmkt_base import BaseFMKTConnector
from .fmkt_connector import FMKTConnector, build_fmkt_connector
from .fmkt_feature_connector import FMKTFeatureConnector
from .fmkt_logit_connector import FMKTLogitConnector

__all__ = ['BaseConnector', 'ConnectorOutput', 'ConvAdapter',
           'IdentityConnector', 'DiffKDConnector', 'BaseFMKTConnector',
           'FMKTConnector', 'FMKTFeatureConnector', 'FMKTLogitConnector',
           'build_fmkt_connector']
