from .sagan import SAGANDiscriminator, SelfAttention2d

__all__ = ['SAGANDiscriminator', 'SelfAttention2d']
