# DiffKD (Huang et al., NeurIPS 2023), Table 6, Cityscapes val mIoU:
#   T: DeepLabV3-R101 78.07   S: DeepLabV3-MBV2 73.12
#   DiffKD 75.71 (test set: 74.96).
# Teacher weights: mmseg model zoo deeplabv3_r101-d8_4xb2-80k_cityscapes-
# 512x1024 (80.20 mIoU; the paper's teacher, from CIRKD, has 78.07). The
# student is mmseg's recipe
# mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024
# (73.84 mIoU in the model zoo), ImageNet pretrained.
# Knowledge diffusion on the decode head's segmentation logits
# (decode_head.conv_seg, 19 channels at 1/8 resolution, no autoencoder):
# vector-form denoiser (per-pixel 1x1 MLP) with adaptive noise matching
# pooled per image, 5 DDIM steps from timestep 400, DIST (beta = gamma = 1,
# tau = 1, one row per pixel) between the denoised student and the teacher
# logits, lambda_1 = lambda_3 = 1 (Appendix B.4). Crops of 512x1024, data
# pipeline, optimiser and 80k-iteration schedule are the student's mmseg
# config (the paper, following CIRKD, trains 40k iterations at lr 0.02).
_base_ = ['mmseg::mobilenet_v2/'
          'mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py',
          '../_base_/distill/diffkd_logits_cityscapes.py']

model = dict(
    _base_.diffkd_logits_distiller,
    _delete_=True,
    student=dict(cfg_path='mmseg::mobilenet_v2/'
                 'mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py'))
