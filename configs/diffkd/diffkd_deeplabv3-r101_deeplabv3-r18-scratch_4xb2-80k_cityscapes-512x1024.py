# DiffKD (Huang et al., NeurIPS 2023), Table 6, Cityscapes val mIoU, student
# trained from scratch (the dagger row):
#   T: DeepLabV3-R101 78.07   S: DeepLabV3-R18 (from scratch) 65.17
#   DiffKD 74.45 (test set: 74.52).
# As diffkd_deeplabv3-r101_deeplabv3-r18_4xb2-80k_cityscapes-512x1024.py (same
# teacher weights, deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024), but the
# student backbone starts from random weights instead of ImageNet.
_base_ = ('./diffkd_deeplabv3-r101_deeplabv3-r18_4xb2-80k_'
          'cityscapes-512x1024.py')

model = dict(student=dict(pretrained=None))
