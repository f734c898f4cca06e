"""The toy scenes' label space: one home for the classes, palettes and COCO
category ids, shared by the generator and the data set classes.

Label maps hold the indices of :data:`CLASSES` (eight classes, every pixel
labelled); the COCO files hold the *thing* classes (:data:`THING_CLASSES`)
with category ids 1..3.
"""
CLASSES = ('sky', 'building', 'road', 'sidewalk', 'vegetation', 'car',
           'person', 'sign')
# Cityscapes' colours for the same classes.
PALETTE = [[70, 130, 180], [70, 70, 70], [128, 64, 128], [244, 35, 232],
           [107, 142, 35], [0, 0, 142], [220, 20, 60], [220, 220, 0]]
(SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, CAR, PERSON,
 SIGN) = range(len(CLASSES))
THING_CLASSES = ('car', 'person', 'sign')
THING_PALETTE = [PALETTE[CAR], PALETTE[PERSON], PALETTE[SIGN]]
# COCO category id (1..K) of each thing class id of the label maps.
COCO_CATEGORY_IDS = {CAR: 1, PERSON: 2, SIGN: 3}
COCO_SUPERCATEGORIES = {CAR: 'vehicle', PERSON: 'human', SIGN: 'object'}
