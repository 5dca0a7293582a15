# Former name of fmkt_retinanet-x101_retinanet-r50_fpn_2x_coco.py, kept so
# that `tools/dist_train.sh configs/fmkt/retinanet_x101_r50.py 8` keeps
# working: it inherits that config and changes nothing
# (tests/test_config_names.py checks that both resolve to the same config).
_base_ = './fmkt_retinanet-x101_retinanet-r50_fpn_2x_coco.py'
