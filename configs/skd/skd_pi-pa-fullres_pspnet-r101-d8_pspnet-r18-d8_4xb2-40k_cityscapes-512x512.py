# Pair-wise at full resolution: all 64x64 positions of the bottleneck feature
# are nodes (M = 4096), computed exactly through the Gram identity. Not in
# the paper (its code could only afford 3x3 nodes); no published number.
_base_ = ['./skd_pi-pa_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x512.py']
model = dict(distiller=dict(distill_losses=dict(loss_pa=dict(scale=None))))
