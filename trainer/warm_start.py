"""Warm start: the weights of the last blessed model loaded into a new one, embeddings remapped by token."""

from __future__ import annotations

import logging
import os
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.spec import ColumnKind, DatasetSpec
from trainer.model import embedding_layer_name


def has_saved_model(path: Optional[str]) -> bool:
    return bool(path) and tf.io.gfile.exists(os.path.join(path, "saved_model.pb"))



def remap_embedding(old: np.ndarray, fresh: np.ndarray, old_vocabulary: List[bytes],
                    new_vocabulary: List[bytes]) -> Tuple[np.ndarray, int]:
    """`fresh` with each token's row taken from `old` where the token was in `old_vocabulary`
    (rows follow the vocabulary, then the OOV buckets, which are kept when their number is the
    same); returns (the matrix, how many tokens kept their row). Vocabularies are ordered by
    frequency, so the same token may sit at another index in each span's vocabulary."""
    if old.shape[1:] != fresh.shape[1:]:
        raise ValueError(f"embedding width {old.shape[1:]} in the base model, {fresh.shape[1:]} now")
    rows = fresh.copy()
    index = {token: i for i, token in enumerate(old_vocabulary)}
    kept = 0
    for i, token in enumerate(new_vocabulary):
        j = index.get(token)
        if j is not None:
            rows[i], kept = old[j], kept + 1
    old_oov, new_oov = old[len(old_vocabulary):], rows[len(new_vocabulary):]
    if len(old_oov) == len(new_oov):
        rows[len(new_vocabulary):] = old_oov
    return rows, kept



def _read_vocabulary(path: str) -> Optional[List[bytes]]:
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read().splitlines()



def warm_start(model, base_model: Optional[str], spec: DatasetSpec,
               tf_transform_output: tft.TFTransformOutput) -> dict:
    """Loads into `model` the weights of the SavedModel at `base_model`.

    Embeddings of categorical features are matched row by row through the two vocabularies (the
    base model's, saved in its assets, and this run's): a token keeps its row wherever the new
    vocabulary puts it, a new token starts fresh. Every other weight is loaded when its name and
    shape still match; the others keep their fresh initialisation and are logged. Returns what
    was done; `base_model` None or empty: a cold start."""
    if not has_saved_model(base_model):
        logging.info("Cold start: no blessed model to start from%s.", f" ({base_model} is empty)" if base_model else "")
        return {"base_model": None, "loaded": [], "reinitialised": [], "remapped": []}
    previous = {v.name: v for v in tf.saved_model.load(base_model).variables}
    embeddings = {f"{embedding_layer_name(c)}/embeddings:0": c for c in spec.features
                  if c.kind is ColumnKind.CATEGORICAL}
    loaded, reinitialised, remapped = [], [], []
    for variable in model.weights:
        old = previous.get(variable.name)
        column = embeddings.get(variable.name)
        old_vocabulary = column and _read_vocabulary(os.path.join(base_model, "assets", column.vocabulary_name))
        reason = None
        if old is None:
            reason = "not in the base model"
        elif old_vocabulary is not None:
            new_vocabulary = tf_transform_output.vocabulary_by_name(column.vocabulary_name)
            try:
                rows, kept = remap_embedding(old.numpy(), variable.numpy(), old_vocabulary, new_vocabulary)
            except ValueError as e:
                reason = str(e)
            else:
                variable.assign(rows)
                loaded.append(variable.name)
                remapped.append({"variable": variable.name, "tokens_kept": kept,
                                 "new_tokens": len(new_vocabulary) - kept})
                if kept < len(new_vocabulary):
                    logging.info("Warm start: %s: %d tokens keep their row, %d new ones start fresh.",
                                 variable.name, kept, len(new_vocabulary) - kept)
                continue
        elif old.shape != variable.shape:
            reason = f"shape {old.shape.as_list()} in the base model, {variable.shape.as_list()} now"
        if reason:
            reinitialised.append({"variable": variable.name, "reason": reason})
            logging.warning("Warm start: %s re-initialised: %s.", variable.name, reason)
            continue
        variable.assign(old)
        loaded.append(variable.name)
    logging.info("Warm start from %s: %d of %d weights loaded (%d embeddings matched by token), %d re-initialised.",
                 base_model, len(loaded), len(model.weights), len(remapped), len(reinitialised))
    return {"base_model": base_model, "loaded": loaded, "reinitialised": reinitialised, "remapped": remapped}

