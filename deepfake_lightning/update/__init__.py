"""Updating a trained detector with a new set: ``train ckpt_path=MODEL +experiment=update data=NEW``.

`plan.py` settles what ``ckpt_path`` means and builds the run (the checkpoint's network and weights, the new data
plus a replay of the old); `replay_data.py` builds the data node; `forgetting.py` writes the before/after table.
"""

from deepfake_lightning.update.forgetting import score_before, write_forgetting
from deepfake_lightning.update.plan import UpdatePlan, prepare_update

__all__ = ["UpdatePlan", "prepare_update", "score_before", "write_forgetting"]
