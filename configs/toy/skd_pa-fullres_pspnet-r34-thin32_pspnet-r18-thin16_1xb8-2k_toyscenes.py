# Pair-wise term alone at full resolution: every position of the bottleneck
# feature is a node (exact through the Gram identity, no M x M matrix).
_base_ = ['./skd_pa_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py']
model = dict(
    distiller=dict(distill_losses=dict(loss_pa=dict(scale=None))))
