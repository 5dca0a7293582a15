# DeepLabV3 (ResNetV1c-18, output stride 8) sized for 128x128 DigitsSeg.
base_channels = 64
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=(128, 128)),
    backbone=dict(
        type='ResNetV1c',
        depth=18,
        stem_channels=base_channels,
        base_channels=base_channels,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True,
        init_cfg=None),
    decode_head=dict(
        type='ASPPHead',
        in_channels=base_channels * 8,
        in_index=3,
        channels=base_channels * 2,
        dilations=(1, 6, 12, 18),
        dropout_ratio=0.1,
        num_classes=11,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
