from .conv_module_connector import ConvModuleConnector
from .fbkd_connector import (FBKDStudentConnector, FBKDTeacherConnector,
                             NonLocalRelation, fbkd_attention_masks)
from .mgd_connector import MGDConnector, random_keep_mask

__all__ = [
    'ConvModuleConnector', 'MGDConnector', 'random_keep_mask',
    'FBKDStudentConnector', 'FBKDTeacherConnector', 'NonLocalRelation',
    'fbkd_attention_masks'
]
