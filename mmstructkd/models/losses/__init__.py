from .adversarial import (AdversarialGeneratorLoss, DiscriminatorLoss,
                          adversarial_generator_loss, discriminator_loss,
                          frozen_discriminator_scores, generator_loss,
                          gradient_penalty)
from .boundary import (BoundaryLoss, boundary_distillation_loss,
                       boundary_weighted_kl, extract_boundary_map)
from .channel_wise import ChannelWiseDivergence, channel_wise_divergence
from .context import (ContextLoss, context_relation_kl,
                      context_relation_kl_naive)
from .crosskd_prediction import (BoxDistributionKLLoss, BoxGIoUDistillLoss,
                                 KDQualityFocalLoss,
                                 box_giou_distillation_loss,
                                 distribution_kl_loss,
                                 kd_quality_focal_loss)
from .dist import DISTLoss, dist_relation_loss, pearson_correlation
# The guard lives in models/utils now; still exported here for old imports.
from ..utils.nonfinite_guard import NonFiniteGuard, nonfinite_terms
from .fbkd import FBKDLoss, fbkd_loss, masked_l2_distance
from .mgd import MGDLoss, masked_generative_loss
from .pair_wise import PairWiseLoss, pair_wise_loss
from .pkd import PKDLoss, pearson_distillation_loss, standardize_channels
from .pixel_wise import PixelWiseLoss, pixel_wise_kl
from .ssim import StructuralSimilarityLoss
from .utils import check_same_shape, float32_math, sum_over_levels

__all__ = [
    'BoundaryLoss', 'boundary_distillation_loss', 'boundary_weighted_kl',
    'extract_boundary_map', 'ContextLoss', 'context_relation_kl',
    'context_relation_kl_naive', 'StructuralSimilarityLoss',
    'ChannelWiseDivergence', 'channel_wise_divergence', 'PairWiseLoss',
    'pair_wise_loss', 'PixelWiseLoss', 'pixel_wise_kl',
    'AdversarialGeneratorLoss', 'DiscriminatorLoss', 'NonFiniteGuard',
    'adversarial_generator_loss', 'check_same_shape', 'discriminator_loss',
    'float32_math', 'frozen_discriminator_scores', 'generator_loss',
    'gradient_penalty', 'nonfinite_terms', 'sum_over_levels', 'MGDLoss',
    'masked_generative_loss', 'PKDLoss', 'pearson_distillation_loss',
    'standardize_channels', 'FBKDLoss', 'fbkd_loss', 'masked_l2_distance',
    'DISTLoss', 'dist_relation_loss', 'pearson_correlation',
    'KDQualityFocalLoss', 'BoxGIoUDistillLoss', 'BoxDistributionKLLoss',
    'kd_quality_focal_loss', 'box_giou_distillation_loss',
    'distribution_kl_loss'
]
