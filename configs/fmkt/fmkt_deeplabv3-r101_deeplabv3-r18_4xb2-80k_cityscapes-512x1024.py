# FM-KT on segmentation [our extension: the authors released no segmentation
# code], Cityscapes 512x1024, 80k iterations:
#   teacher DeepLabV3 ResNet-101-D8  80.20 mIoU (mmseg model zoo)
#   student DeepLabV3 ResNet-18-D8   76.70 mIoU alone (model zoo)
#   no paper number (extension); DiffKD (paper) on DeepLabV3-R18:
#   74.21 -> 77.78.
# Per-pixel logit flow on the decode head: Z is the head's feature before
# conv_seg (decode_head.bottleneck, 128 channels at 1/8 resolution); a conv
# meta-encoder runs N = 8 rectified Euler steps; every step's prediction goes
# through a per-pixel Linear(128, 19) (a 1x1 conv like conv_seg) and is
# matched to the teacher's segmentation logits with DIST (beta = gamma = 1,
# tau = 1, rows = pixels) plus per-pixel CE on the labels (ignore 255), each
# with weight 1 / N. The mean logits replace the student's conv_seg output in
# training and inference; the student's own decode-head CE is switched off
# (loss_weight 0, no CE outside the flow) while its auxiliary FCN head keeps
# its 0.4 CE. conv_seg is then unused: DDP needs find_unused_parameters.
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/default_runtime_distill.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmsegmentation/v0.5/'
                'deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/'
                'deeplabv3_r101-d8_512x1024_80k_cityscapes_'
                '20200606_113503-9e428899.pth')
model = dict(
    _delete_=True,
    _scope_='mmkdflow',
    type='Distiller',
    student=dict(
        cfg_path='mmseg::deeplabv3/'
        'deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
        decode_head=dict(loss_decode=dict(loss_weight=0.0))),
    teacher=dict(cfg_path='mmseg::deeplabv3/'
                 'deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        flow=dict(
            student='decode_head.bottleneck',
            teacher='decode_head.conv_seg',
            replace='decode_head.conv_seg',
            connector=dict(
                type='FMKTLogitConnector',
                channels=128,
                meta_encoder='conv',
                num_steps=8,
                head_pool=False,
                num_classes=19,
                distance=dict(type='DISTLoss', beta=1.0, gamma=1.0,
                              tau=1.0)))))
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
